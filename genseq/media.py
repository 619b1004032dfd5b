"""Pictures and sounds out: WAV files, waveform/spectrogram plots, sprite grids.

Everything is written through :func:`genseq.store.atomic_path`, so an interrupted command never
leaves a half-written output. Plots are drawn with NumPy and saved with
Pillow; nothing here needs a plotting library.
"""

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from genseq.store import atomic_path, writable_folder

BACKGROUND = (236, 236, 236)
MARK = (220, 40, 40)
# a dark-to-light colour ramp for spectrograms (black, purple, orange, pale yellow)
RAMP = np.array([[0, 0, 4], [80, 18, 123], [183, 55, 121], [252, 137, 97], [252, 253, 191]], float)


def check_output(path) -> None:
    """Refuse, before any work, an output whose folder cannot be made or written."""
    writable_folder(Path(path).parent, f"write {path}")


def write_wav(path, wave: np.ndarray, sample_rate: int) -> None:
    with atomic_path(path) as tmp:
        sf.write(tmp, np.asarray(wave, np.float32), sample_rate, subtype="PCM_16", format="WAV")


def write_png(path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(tmp, format="PNG")


def ramp(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB through :data:`RAMP`."""
    position = np.clip(values, 0, 1) * (len(RAMP) - 1)
    low = np.floor(position).astype(int).clip(max=len(RAMP) - 2)
    frac = (position - low)[..., None]
    return (RAMP[low] * (1 - frac) + RAMP[low + 1] * frac).astype(np.uint8)


def audio_picture(wave: np.ndarray, sample_rate: int, boundary: int | None = None,
                  width: int = 1000, wave_height: int = 120, spec_height: int = 220) -> np.ndarray:
    """Waveform above log spectrogram (0 to sample_rate / 2, low at the bottom), RGB; a red line
    marks sample ``boundary`` (where the prime ends and the continuation starts)."""
    wave = np.asarray(wave, np.float32)
    n = max(len(wave), 1)
    top = np.full((wave_height, width, 3), 255, np.uint8)
    edges = np.linspace(0, n, width + 1).astype(int)
    mid = wave_height // 2
    for x in range(width):
        chunk = wave[edges[x]:max(edges[x + 1], edges[x] + 1)]
        if len(chunk):
            lo = int(mid - chunk.max() * (mid - 2))
            hi = int(mid - chunk.min() * (mid - 2))
            top[max(lo, 0):min(hi, wave_height - 1) + 1, x] = (40, 70, 140)
    n_fft = 512
    hop = max(1, n // width)
    padded = torch.from_numpy(np.pad(wave, (0, max(0, n_fft - len(wave)))))
    spec = torch.stft(padded, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-6)
    db = ((db - (db.max() - 80)) / 80).clamp(0, 1).numpy()[::-1]  # 80 dB range, low bins at the bottom
    rows = np.linspace(0, db.shape[0] - 1, spec_height).astype(int)
    cols = np.linspace(0, db.shape[1] - 1, width).astype(int)
    bottom = ramp(db[rows][:, cols])
    picture = np.concatenate([top, np.full((4, width, 3), 255, np.uint8), bottom])
    if boundary is not None and 0 < boundary < n:
        x = int(boundary / n * width)
        picture[:, max(0, x - 1):x + 1] = MARK
    return picture


def on_background(rgba: np.ndarray) -> np.ndarray:
    """Composite RGBA over the light background, RGB."""
    alpha = rgba[..., 3:4].astype(float) / 255
    return (rgba[..., :3] * alpha + np.array(BACKGROUND) * (1 - alpha)).astype(np.uint8)


def grid(images: list[np.ndarray], columns: int | None = None, scale: int = 4, gap: int = 2) -> np.ndarray:
    """RGBA images of one size -> one RGB grid, each scaled up ``scale`` times by nearest
    neighbour so that pixel art stays sharp, with white gaps between them."""
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    h, w = images[0].shape[0] * scale, images[0].shape[1] * scale
    out = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        big = np.kron(on_background(image), np.ones((scale, scale, 1), np.uint8)) if image.shape[-1] == 4 else \
            np.kron(image, np.ones((scale, scale, 1), np.uint8))
        out[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = big
    return out


def hide_below(image: np.ndarray, keep_rows: int) -> np.ndarray:
    """The image with rows from ``keep_rows`` down greyed out (what a completion was given)."""
    shown = image.copy()
    shown[keep_rows:] = (*[160] * 3, 255)
    return shown
