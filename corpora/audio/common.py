"""What the audio corpora's build scripts share: levels, silence trimming, the split, sizes.

Both corpora are 16 kHz mono 8-bit mu-law WAVs, peak-normalised to -1 dBFS with leading and
trailing silence cut, split by file (every 20th to test, the next to valid), and committed up to
a byte budget counted in 4 KiB blocks as ``du`` counts them.
"""

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
PEAK_DBFS = -1.0
TRIM_DBFS = -45.0  # frames quieter than this (RMS, after normalising) are silence
FRAME_S = 0.010
PAD_S = 0.030  # margin kept before the first and after the last loud frame
BUDGET_BYTES = int(9.5 * 2**20)  # WAV total in 4 KiB blocks; leaves room for text files
BLOCK = 4096


def normalise(x: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x * (10 ** (peak_dbfs / 20) / peak) if peak > 0 else x


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading and trailing frames with RMS below ``TRIM_DBFS``."""
    frame = int(FRAME_S * SAMPLE_RATE)
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > 10 ** (TRIM_DBFS / 20))
    if loud.size == 0:
        return x[:0]
    pad = int(PAD_S * SAMPLE_RATE)
    start = max(0, loud[0] * frame - pad)
    stop = min(len(x), (loud[-1] + 1) * frame + pad)
    return x[start:stop]


def process(x: np.ndarray) -> np.ndarray:
    return normalise(trim(normalise(x)))


def disk_bytes(path: Path) -> int:
    """Size of ``path`` rounded up to whole 4 KiB blocks, as ``du`` counts it."""
    return -(-path.stat().st_size // BLOCK) * BLOCK


def split_of(index: int) -> str:
    return "test" if index % 20 == 0 else "valid" if index % 20 == 1 else "train"
