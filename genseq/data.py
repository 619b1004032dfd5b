"""Held-out splits and training batches, both deterministic functions of a seed.

The batch for optimizer step ``s`` depends only on (seed, s): a resumed run sees exactly the data
an uninterrupted run would, with no data-loader state to save.
"""

import random

import numpy as np
import torch

from genseq.errors import GenseqError


def split_holdout(items: list, fraction: float, seed: int, block: int = 50) -> tuple[list, list]:
    """Split ``items`` into (train, held-out), holding out about ``fraction`` of them in whole
    blocks of ``block`` consecutive items, so that held-out text stays running text."""
    if len(items) < 2:
        raise GenseqError(f"the corpus has {len(items)} item, too few to hold out a validation set; give more "
                          "lines, clips or images, or a held-out set with --valid")
    block = max(1, min(block, len(items) // 20))
    starts = list(range(0, len(items), block))
    n_held = min(len(starts) - 1, max(1, round(fraction * len(starts))))
    held = np.zeros(len(items), bool)
    for start in random.Random(seed).sample(starts, n_held):
        held[start:start + block] = True
    # compact lines of text (codecs.text.Lines) give views that share their buffer, no copies
    take = items.take if hasattr(items, "take") else (lambda indices: [items[i] for i in indices.tolist()])
    return take(np.flatnonzero(~held)), take(np.flatnonzero(held))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The random generator that picks the data of one step on one rank."""
    return torch.Generator().manual_seed(hash((seed, step, rank)) & 0x7FFF_FFFF_FFFF)


class TokenWindows:
    """Random windows of ``seq_len + 1`` ids from one token stream, ``batch_size`` per step."""

    def __init__(self, stream: torch.Tensor, seq_len: int, batch_size: int, seed: int):
        if len(stream) < 3:
            raise GenseqError("the training split is too short to learn from; give more text")
        self.stream = stream
        self.seq_len = min(seq_len, len(stream) - 1)
        self.batch_size = batch_size
        self.seed = seed

    def batch(self, step: int, rank: int = 0) -> torch.Tensor:
        """The (batch_size, seq_len + 1) windows for ``step`` (and ``rank``, for data parallelism)."""
        generator = step_generator(self.seed, step, rank)
        starts = torch.randint(len(self.stream) - self.seq_len, (self.batch_size,), generator=generator)
        offsets = torch.arange(self.seq_len + 1)
        return self.stream[starts[:, None] + offsets].long()

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        """How often each id occurs in the training stream, (vocab_size,)."""
        return torch.bincount(self.stream.long(), minlength=vocab_size)


class StreamLanes(TokenWindows):
    """``batch_size`` lanes through one token stream, each reading ``carry`` consecutive windows
    of ``seq_len`` tokens from a random start, one window a step, so that a model can carry its
    state from each window to the next (truncated backpropagation through time, as SampleRNN
    trains): it learns from, and for, a state as old as ``carry`` windows, as sampling's is. The
    lanes start anew together every ``carry`` steps (:meth:`fresh`). A fresh window holds
    ``seq_len + 2`` ids (its first input only starts the state, so a frame model's state ends
    where a frame starts its second position), the later ones ``seq_len + 1``, each overlapping
    the last by one id. The batch of a step still depends only on (seed, step, rank)."""

    def __init__(self, stream: torch.Tensor, seq_len: int, batch_size: int, seed: int, carry: int):
        self.span = carry * seq_len + 2
        if len(stream) < self.span:
            raise GenseqError(f"--carry {carry} windows of {seq_len} tokens need {self.span:,} tokens, and the "
                              f"training split holds {len(stream):,}; give a smaller --carry or --seq-len")
        super().__init__(stream, seq_len, batch_size, seed)
        self.carry = carry

    def fresh(self, step: int) -> bool:
        """Whether the windows of ``step`` start the lanes anew (from a fresh state)."""
        return step % self.carry == 0

    def batch(self, step: int, rank: int = 0) -> torch.Tensor:
        lane_step, index = divmod(step, self.carry)
        generator = step_generator(self.seed, lane_step * self.carry, rank)  # the lanes' starts
        starts = torch.randint(len(self.stream) - self.span + 1, (self.batch_size,), generator=generator)
        begin = 0 if index == 0 else 1 + index * self.seq_len
        offsets = torch.arange(begin, 1 + (index + 1) * self.seq_len + 1)
        return self.stream[starts[:, None] + offsets].long()


def pad_sequences(sequences: list[list[int]], bos: int, eos: int, pad: int = 0) -> torch.Tensor:
    """Id lists -> (B, T) ids laid out as ``bos x_1 .. x_n eos pad ..``."""
    width = max(len(s) for s in sequences) + 2
    out = torch.full((len(sequences), width), pad, dtype=torch.long)
    for row, ids in enumerate(sequences):
        out[row, :len(ids) + 2] = torch.tensor([bos, *ids, eos])
    return out


class ItemBatches:
    """Random whole items (lines, or images in raster order), ``batch_size`` per step, padded: the
    data of a VAE. With ``flip_width`` (images of that width) each image is mirrored left to right
    with probability one half, as :class:`ImageBatches` does.

    With ``splice`` (lines of text), that share of the rows is two training lines joined where a
    word starts: the start of one and the end of another, at most as long as the longest line. A
    small corpus read many times over is learnt by heart; spliced lines are new every step, so
    the model must learn to read and write lines it has never seen. ``word_starts`` tells which
    ids start a word (:meth:`genseq.codecs.text.TextCodec.word_starts`); lines with no word start
    past their first token stay whole, and text written without spaces (Chinese), where no line
    has one, is joined before any token."""

    def __init__(self, sequences: list[list[int]], batch_size: int, seed: int, bos: int, eos: int,
                 flip_width: int | None = None, splice: float = 0.0, word_starts: list[bool] | None = None):
        if not sequences:
            raise GenseqError("the training split holds no items; give more lines")
        self.sequences, self.batch_size, self.seed = sequences, batch_size, seed
        self.bos, self.eos, self.flip_width, self.splice = bos, eos, flip_width, splice
        if splice:
            self.cuts = [[k for k in range(1, len(ids)) if word_starts[ids[k]]] for ids in sequences]
            if not any(self.cuts):
                self.cuts = [list(range(1, len(ids))) for ids in sequences]
            self.longest = max(len(ids) for ids in sequences)

    def batch(self, step: int, rank: int = 0) -> torch.Tensor:
        generator = step_generator(self.seed, step, rank)
        picks = torch.randint(len(self.sequences), (self.batch_size,), generator=generator)
        rows = self.spliced(picks, generator) if self.splice else [self.sequences[i] for i in picks.tolist()]
        batch = pad_sequences(rows, self.bos, self.eos)
        if self.flip_width:
            mirror_half(batch, slice(1, -1), self.flip_width, generator)
        return batch

    def spliced(self, picks: torch.Tensor, generator: torch.Generator) -> list[list[int]]:
        """The rows of ``picks``, each spliced to another line with probability ``splice``."""
        ends = torch.randint(len(self.sequences), (len(picks),), generator=generator).tolist()
        draws = torch.rand(len(picks), 3, generator=generator).tolist()
        rows = []
        for first, last, (chance, at_first, at_last) in zip(picks.tolist(), ends, draws):
            head, tail = self.cuts[first], self.cuts[last]
            row = self.sequences[first]
            if chance < self.splice and head and tail:
                joined = row[:head[int(at_first * len(head))]] + self.sequences[last][tail[int(at_last * len(tail))]:]
                row = joined if len(joined) <= self.longest else row
            rows.append(row)
        return rows


class ImageBatches:
    """Random whole images (start id + raster pixels), ``batch_size`` per step, each flipped left
    to right with probability one half when ``flip`` is set: a sprite and its mirror image are
    equally good sprites, which doubles a small corpus."""

    def __init__(self, stream: torch.Tensor, height: int, width: int, batch_size: int, seed: int,
                 flip: bool = True):
        self.items = stream.long().view(-1, height * width + 1)
        if len(self.items) == 0:
            raise GenseqError("the training split holds no images; give more images")
        self.height, self.width, self.batch_size, self.seed, self.flip = height, width, batch_size, seed, flip

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        """How often each pixel id occurs in the training images (start ids left out), (vocab_size,)."""
        return torch.bincount(self.items[:, 1:].flatten(), minlength=vocab_size)

    def batch(self, step: int, rank: int = 0) -> torch.Tensor:
        generator = step_generator(self.seed, step, rank)
        picks = torch.randint(len(self.items), (self.batch_size,), generator=generator)
        batch = self.items[picks].clone()
        if self.flip:
            mirror_half(batch, slice(1, None), self.width, generator)
        return batch


def mirror_half(batch: torch.Tensor, pixels: slice, width: int, generator: torch.Generator) -> None:
    """Mirror left to right, in place, the images of about half the rows of ``batch`` (B, T), each
    row's ``pixels`` columns an image ``width`` pixels wide in raster order."""
    mirror = torch.rand(len(batch), generator=generator) < 0.5
    images = batch[mirror, pixels]
    batch[mirror, pixels] = images.view(len(images), -1, width).flip(-1).flatten(1)
