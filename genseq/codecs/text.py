"""Text as SentencePiece tokens (Kudo & Richardson 2018), one line of text per item.

The tokenizer is trained on the training split only and its model bytes travel inside the genseq
model file. ``char`` suits Chinese poem lines; ``unigram`` (the default) and ``bpe`` suit English.
"""

import io
import random
from array import array
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

import numpy as np

import sentencepiece as spm
import torch

from genseq.codecs.base import BOS, EOS, PAD, UNK, Codec
from genseq.errors import GenseqError

TOKENIZERS = ("unigram", "bpe", "char")


VOCAB_SIZE = 2000  # SentencePiece pieces of a new text model unless told otherwise
TOKENIZER_LINES = 200_000  # lines a tokenizer is fitted on, at most: plenty for a few thousand pieces


def choose_tokenizer(lines) -> str:
    """``auto``: ``char`` for text written mostly in CJK ideographs (no spaces to split on, and one
    character is one word-like unit), ``unigram`` otherwise."""
    sample = "".join(lines[:2000])
    cjk = sum("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in sample)
    return "char" if cjk > 0.3 * max(1, len(sample)) else "unigram"


class Lines(Sequence):
    """Lines of text held as one UTF-8 buffer and the offsets between them, a line decoded when it
    is read: 5 million lines (a 200 MB corpus) take about 250 MB here against 540 MB as Python
    strings. Slicing and :meth:`take` give views that share the buffer."""

    def __init__(self, data: bytes | bytearray, bounds: np.ndarray, positions: np.ndarray | None = None):
        self.data, self.bounds = data, bounds  # line i is data[bounds[i]:bounds[i + 1]]
        self.positions = np.arange(len(bounds) - 1) if positions is None else positions

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def nbytes(self) -> int:
        """The UTF-8 bytes of these lines, without their line ends."""
        return int((self.bounds[self.positions + 1] - self.bounds[self.positions]).sum())

    def __getitem__(self, key):
        if isinstance(key, slice):
            return Lines(self.data, self.bounds, self.positions[key])
        i = self.positions[key]
        return self.data[self.bounds[i]:self.bounds[i + 1]].decode("utf-8")

    def __iter__(self):
        data, bounds = self.data, self.bounds
        for i in self.positions.tolist():
            yield data[bounds[i]:bounds[i + 1]].decode("utf-8")

    def take(self, indices) -> "Lines":
        """The lines at ``indices`` (positions in this view), as a view."""
        return Lines(self.data, self.bounds, self.positions[np.asarray(indices, dtype=np.int64)])

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"Lines({len(self):,} lines)"


def read_text_corpus(path) -> Lines:
    """The non-empty stripped lines of a UTF-8 file, or of every ``.txt`` file under a folder
    (sorted), as :class:`Lines`.

    Raises :class:`GenseqError` naming the file for a missing path, undecodable bytes or no text.
    """
    path = Path(path)
    if not path.exists():
        raise GenseqError(f"{path} does not exist; give a UTF-8 text file or a folder of .txt files")
    files = sorted(p for p in path.rglob("*.txt") if p.is_file()) if path.is_dir() else [path]
    if not files:
        raise GenseqError(f"{path} holds no .txt files; put UTF-8 text files ending in .txt there")
    data, ends = bytearray(), array("q", [0])
    for file in files:
        for line in file_lines(file):
            data += line.encode("utf-8")
            ends.append(len(data))
    if len(ends) == 1:
        raise GenseqError(f"{path} holds no text; give a file with at least one non-empty line")
    return Lines(data, np.frombuffer(ends, dtype=np.int64))  # no copy of the buffer


def file_lines(file: Path):
    """The non-empty stripped lines of one UTF-8 file, one at a time, read a line at a time so
    that memory never holds the file's bytes or text whole."""
    try:
        with open(file, encoding="utf-8") as f:
            for read in f:
                if "\x00" in read:
                    raise GenseqError(f"{file} looks binary (it holds NUL bytes); give a UTF-8 text file")
                yield from (line for line in (raw.strip() for raw in read.splitlines()) if line)
    except UnicodeDecodeError:
        data = file.read_bytes()  # only to say where: the error's offset is within a read buffer
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GenseqError(f"{file} is not UTF-8 text (byte {e.start} is {data[e.start]:#04x}); "
                              "convert it, e.g. iconv -f latin1 -t utf-8") from None
        raise


class TextCodec(Codec):
    """Lines of text <-> SentencePiece ids, with ``eos`` ending each line.

    In a stream the lines follow one another, each ended by ``eos``, and the stream starts with
    ``eos`` too: so "the start of a line" is always "just after an eos", and a model trained on the
    stream continues a prompt as the start of a new line.
    """

    kind = "text"
    unit = "token"
    stop_id = EOS
    recon_unit = "char"

    def recon_units(self, item: str) -> str:
        return item

    def __init__(self, model_proto: bytes, tokenizer: str):
        self.model_proto = model_proto
        self.tokenizer = tokenizer
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @classmethod
    def train(cls, lines, tokenizer: str = "unigram", vocab_size: int = VOCAB_SIZE) -> "TextCodec":
        """Train a SentencePiece model on ``lines`` (the training split only; a seeded sample of
        :data:`TOKENIZER_LINES` of them when there are more)."""
        if tokenizer not in TOKENIZERS:
            raise GenseqError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        if len(lines) > TOKENIZER_LINES:  # a seeded sample: SentencePiece holds what it is given
            lines = random.Random(0).sample(lines, TOKENIZER_LINES)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=model, model_type=tokenizer,
                vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=0.9999,
                pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, input_sentence_size=2_000_000,
                shuffle_input_sentence=True, max_sentence_length=1 << 16, minloglevel=2,
                add_dummy_prefix=tokenizer != "char")  # chars need no word-start marker
        except RuntimeError as e:
            raise GenseqError(f"SentencePiece could not train on this corpus ({e}); "
                              "try a smaller --vocab-size or more text") from None
        return cls(model.getvalue(), tokenizer)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, item: str) -> list[int]:
        return self.sp.encode(item)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if EOS in ids:
            ids = ids[:ids.index(EOS)]
        return self.sp.decode(ids)

    def encode_stream(self, items, chunk: int = 10_000) -> torch.Tensor:
        """The lines as one stream, encoded ``chunk`` lines at a time into uint16 ids (int32 past
        65,536 pieces): a 200 MB corpus is 130 MB of ids, not gigabytes of Python lists."""
        dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.int32
        parts = [np.array([EOS], dtype)]
        for start in range(0, len(items), chunk):
            pieces = self.sp.encode(list(items[start:start + chunk]))
            parts.append(np.fromiter(chain.from_iterable(ids + [EOS] for ids in pieces), dtype))
        return torch.from_numpy(np.concatenate(parts))

    def prime(self, prefix: str | None = None) -> list[int]:
        return [EOS] + (self.encode(prefix) if prefix else [])

    def word_starts(self) -> list[bool]:
        """For each id, whether its piece starts a word (SentencePiece marks it with U+2581; a
        character tokenizer's space is that mark alone, so the word starts just before it)."""
        return [self.sp.id_to_piece(i).startswith("\u2581") for i in range(self.vocab_size)]

    def unknown_characters(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that the tokenizer never saw (they become unk)."""
        return sorted({ch for ch in text if not ch.isspace() and UNK in self.sp.encode(ch)})

    def counts(self, items) -> dict[str, int]:
        return {"char": sum(len(line) + 1 for line in items)}  # +1: the newline that eos stands for

    def state_dict(self) -> dict:
        return {"kind": self.kind, "tokenizer": self.tokenizer, "spm_model": self.model_proto}

    @classmethod
    def from_state(cls, state: dict) -> "TextCodec":
        return cls(state["spm_model"], state["tokenizer"])
