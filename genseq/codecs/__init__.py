"""Codecs turn domain data into token ids over a fixed vocabulary and back.

Every codec implements :class:`Codec`; the model, the trainer and ``generate`` only ever see the
integer ids. A codec's state (a SentencePiece model, a palette, a sample rate) is saved inside the
model file as plain numbers, strings and bytes, and :func:`codec_from_state` rebuilds it.
"""

from pathlib import Path

from genseq.codecs.audio import AUDIO_SUFFIXES, SAMPLE_RATE, AudioCodec, read_audio
from genseq.codecs.base import BOS, EOS, PAD, UNK, Codec
from genseq.codecs.image import IMAGE_SUFFIXES, ImageCodec, read_image, read_image_corpus, read_lecture_corpus
from genseq.codecs.text import TextCodec, read_text_corpus
from genseq.errors import GenseqError

CODECS = {codec.kind: codec for codec in (TextCodec, AudioCodec, ImageCodec)}
SUFFIXES = {"audio": AUDIO_SUFFIXES, "image": IMAGE_SUFFIXES, "text": (".txt",)}


def codec_from_state(state: dict) -> Codec:
    """Rebuild a codec from the ``codec`` entry of a model file."""
    kind = state.get("kind")
    if kind not in CODECS:
        raise GenseqError(f"the model uses a codec of kind {kind!r} that this genseq does not know; "
                          "upgrade genseq")
    return CODECS[kind].from_state(state)


def corpus_kind(path, colormap=None) -> str:
    """``text``, ``audio`` or ``image``: what a corpus path holds, told by its file suffixes.

    A file with ``colormap`` is the lecture's pixel format. A folder must hold one kind only.
    """
    path = Path(path)
    if colormap is not None:
        return "image"
    if not path.exists():
        raise GenseqError(f"{path} does not exist; give a text file or a folder of text, audio or images")
    if path.is_file():
        suffix = path.suffix.lower()
        return next((kind for kind, suffixes in SUFFIXES.items() if suffix in suffixes), "text")
    found = {kind: sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
             for kind, suffixes in SUFFIXES.items()}
    kinds = [kind for kind, n in found.items() if n]
    if not kinds:
        raise GenseqError(f"{path} holds no .txt, audio ({', '.join(AUDIO_SUFFIXES)}) or image "
                          f"({', '.join(IMAGE_SUFFIXES)}) files")
    if len(kinds) > 1:
        mix = ", ".join(f"{found[k]} {k}" for k in kinds)
        raise GenseqError(f"{path} mixes kinds of files ({mix}); give a folder of one kind")
    return kinds[0]


def read_corpus(path, kind: str, *, sample_rate: int = SAMPLE_RATE, colormap=None) -> list:
    """The items of a corpus of ``kind``: lines of text, float32 mono clips at ``sample_rate``, or
    RGBA images."""
    if kind == "text":
        return read_text_corpus(path)
    if kind == "audio":
        return AudioCodec(sample_rate).read_corpus(path)
    if colormap is not None:
        return read_lecture_corpus(path, colormap)[0]
    return read_image_corpus(path)


__all__ = ["AudioCodec", "Codec", "ImageCodec", "TextCodec", "codec_from_state", "corpus_kind",
           "read_audio", "read_corpus", "read_image", "read_text_corpus", "CODECS"]
