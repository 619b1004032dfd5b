"""Codecs turn domain data into token ids over a fixed vocabulary and back.

Every codec implements :class:`Codec`; the model, the trainer and ``generate`` only ever see the
integer ids. A codec's state (a SentencePiece model, a palette, a sample rate) is saved inside the
model file as plain numbers, strings and bytes, and :func:`codec_from_state` rebuilds it.
"""

from genseq.codecs.base import Codec
from genseq.codecs.text import TextCodec, read_text_corpus
from genseq.errors import GenseqError

CODECS = {TextCodec.kind: TextCodec}


def codec_from_state(state: dict) -> Codec:
    """Rebuild a codec from the ``codec`` entry of a model file."""
    kind = state.get("kind")
    if kind not in CODECS:
        raise GenseqError(f"the model uses a codec of kind {kind!r} that this genseq does not know; "
                          "upgrade genseq")
    return CODECS[kind].from_state(state)


__all__ = ["Codec", "TextCodec", "codec_from_state", "read_text_corpus", "CODECS"]
