"""Held-out splits and training batches, both deterministic functions of a seed.

The batch for optimizer step ``s`` depends only on (seed, s): a resumed run sees exactly the data
an uninterrupted run would, with no data-loader state to save.
"""

import random

import torch

from genseq.errors import GenseqError


def split_holdout(items: list, fraction: float, seed: int, block: int = 50) -> tuple[list, list]:
    """Split ``items`` into (train, held-out), holding out about ``fraction`` of them in whole
    blocks of ``block`` consecutive items, so that held-out text stays running text."""
    if len(items) < 2:
        raise GenseqError(f"the corpus has {len(items)} item; give at least two (one is held out)")
    block = max(1, min(block, len(items) // 20))
    starts = list(range(0, len(items), block))
    n_held = min(len(starts) - 1, max(1, round(fraction * len(starts))))
    held = set(random.Random(seed).sample(starts, n_held))
    train, valid = [], []
    for start in starts:
        (valid if start in held else train).extend(items[start:start + block])
    return train, valid


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
        generator = torch.Generator().manual_seed(hash((self.seed, step, rank)) & 0x7FFF_FFFF_FFFF)
        starts = torch.randint(len(self.stream) - self.seq_len, (self.batch_size,), generator=generator)
        offsets = torch.arange(self.seq_len + 1)
        return self.stream[starts[:, None] + offsets].long()
