"""Images as palette indices in raster order (PixelRNN's 1-of-N pixels, as in the lecture).

A palette of N colours is learned by k-means over the training pixels; transparency is a class of
its own; every pixel becomes the index of its nearest colour, so a model picks one of N real colours
and can never average two into a dull third. Images are scaled to the model's size by nearest
neighbour (pixel art stays crisp), keeping their aspect ratio, and padded with transparency.

An item is an RGBA uint8 array of shape (H, W, 4). A stream is, per image, the start id followed
by its H x W pixel ids.
"""

import math
from pathlib import Path

import numpy as np
import torch

from genseq.codecs.base import Codec
from genseq.errors import GenseqError

IMAGE_SUFFIXES = (".png", ".gif", ".bmp", ".jpg", ".jpeg", ".webp")
MIN_SIDE, MAX_SIDE = 4, 2048
ALPHA_CUT = 128  # pixels less opaque than this are transparent


def read_image(path) -> np.ndarray:
    """An image file as an RGBA uint8 array (H, W, 4); a clear error for anything else."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise GenseqError(f"{path} does not exist; give a PNG, GIF, BMP or JPEG image")
    try:
        with Image.open(path) as image:
            if max(image.size) > MAX_SIDE:
                raise GenseqError(f"{path} is {image.size[0]}x{image.size[1]} pixels; genseq models "
                                  f"draw small images: give one at most {MAX_SIDE} pixels a side")
            rgba = np.asarray(image.convert("RGBA"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise GenseqError(f"{path} is not an image genseq can read ({e}); give a PNG, GIF, BMP or "
                          "JPEG file") from None
    if min(rgba.shape[:2]) < MIN_SIDE:
        raise GenseqError(f"{path} is {rgba.shape[1]}x{rgba.shape[0]} pixels; give an image at least "
                          f"{MIN_SIDE} pixels a side")
    return rgba


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_corpus(path) -> list[np.ndarray]:
    path = Path(path)
    files = image_files(path) if path.is_dir() else [path]
    if not files:
        raise GenseqError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [read_image(file) for file in files]


def read_colormap(path) -> np.ndarray:
    """The lecture's ``colormap.txt``: one ``R G B`` row per colour index -> (N, 3) uint8."""
    try:
        palette = np.loadtxt(path, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as e:
        raise GenseqError(f"cannot read {path} as a colormap ({e}); give one R G B row per colour") from None
    if palette.shape[1] != 3 or palette.min() < 0 or palette.max() > 255:
        raise GenseqError(f"{path} is not a colormap; give one R G B row (0-255) per colour")
    return palette.astype(np.uint8)


def read_lecture_corpus(pixels_path, colormap_path) -> tuple[list[np.ndarray], np.ndarray]:
    """The lecture's format: one image per line of ``pixels_path`` as H*W colour indices (square),
    and ``colormap_path`` with one ``R G B`` row per index. Returns RGBA images and the palette."""
    palette = read_colormap(colormap_path)
    try:
        rows = [line.split() for line in Path(pixels_path).read_text().splitlines() if line.strip()]
        indices = np.array(rows, dtype=np.int64)
    except (OSError, ValueError) as e:
        raise GenseqError(f"cannot read {pixels_path} as the lecture's format ({e}); give one line "
                          "of pixel indices per image") from None
    if indices.min() < 0 or indices.max() >= len(palette):
        raise GenseqError(f"{pixels_path} uses colour indices the colormap {colormap_path} lacks")
    side = int(round(indices.shape[1] ** 0.5))
    if side * side != indices.shape[1]:
        raise GenseqError(f"{pixels_path} has {indices.shape[1]} pixels per line; the lecture's "
                          "images are square")
    rgb = palette[indices].reshape(-1, side, side, 3)
    alpha = np.full(rgb.shape[:3] + (1,), 255, np.uint8)
    return list(np.concatenate([rgb, alpha], -1)), palette


def kmeans(points: np.ndarray, k: int, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """k-means (Lloyd, k-means++ seeding) of float points (n, d) -> centres (k, d)."""
    rng = np.random.default_rng(seed)
    centres = [points[rng.integers(len(points))]]
    dist = ((points - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(points[rng.choice(len(points), p=dist / dist.sum())])
        dist = np.minimum(dist, ((points - centres[-1]) ** 2).sum(1))
    centres = np.array(centres)
    for _ in range(iterations):
        labels = nearest(points, centres)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        sizes = np.bincount(labels, minlength=k)[:, None]
        centres = np.where(sizes > 0, sums / np.maximum(sizes, 1), centres)
    return centres


def nearest(points: np.ndarray, centres: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest centre of each point."""
    out = np.empty(len(points), np.int64)
    c2 = (centres ** 2).sum(1)
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        out[start:start + chunk] = (c2[None] - 2 * p @ centres.T).argmin(1)
    return out


PALETTE = 167  # colours, as in the PixelRNN lecture
SIZE = (32, 32)  # (height, width) of images of mixed sizes, or larger than NATIVE_LIMIT
NATIVE_LIMIT = 64  # images that share one size with no side above this train at that size


def corpus_size(images, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The (height, width) a model of ``images`` draws: ``size`` if given; else the images' own
    size when they all share one with no side above :data:`NATIVE_LIMIT`; else :data:`SIZE`."""
    if size is not None:
        return tuple(size)
    sizes = {image.shape[:2] for image in images}
    if len(sizes) == 1 and max(next(iter(sizes))) <= NATIVE_LIMIT:
        return next(iter(sizes))
    return SIZE


def fit_size(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale by nearest neighbour to fit (height, width) keeping the aspect ratio, centre it and
    pad with transparency."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum((np.arange(nh) / scale).astype(np.int64), h - 1)
    cols = np.minimum((np.arange(nw) / scale).astype(np.int64), w - 1)
    out = np.zeros((height, width, 4), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top:top + nh, left:left + nw] = image[rows][:, cols]
    return out


def opacity_first(logits: torch.Tensor, transparent_id: int) -> torch.Tensor:
    """Logits whose argmax decides a pixel's opacity by its own probability first, then its
    colour: a pixel is transparent if that is more likely than not, else the likeliest colour.
    Plain argmax would call a pixel transparent whenever no single one of many similar colours
    beats transparency, and greedy sprites would come out empty."""
    p_clear = logits.float().softmax(-1)[..., transparent_id]
    boost = torch.where(p_clear >= 0.5, float("inf"), float("-inf"))
    return torch.cat([logits[..., :transparent_id], boost.unsqueeze(-1).to(logits.dtype),
                      logits[..., transparent_id + 1:]], -1)


class ImageCodec(Codec):
    """RGBA images <-> palette ids in raster order.

    Ids: ``offset + 0 .. offset + N-1`` the palette's colours, then (if the corpus has any) one id
    for transparent pixels, then the start id that begins every image. Ids below ``offset`` are
    left to the model: the sequence VAE keeps 0-3 for pad, unk, bos and eos, as it does for text.
    """

    kind = "image"
    unit = "pixel"

    def __init__(self, palette, height: int, width: int, transparent: bool, offset: int = 0):
        self.palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        self.height, self.width, self.transparent = int(height), int(width), bool(transparent)
        self.offset = int(offset)
        self.transparent_id = self.offset + len(self.palette) if self.transparent else None
        self.start_id = self.offset + len(self.palette) + int(self.transparent)

    @classmethod
    def fit(cls, images, colours: int = PALETTE, height: int = SIZE[0], width: int = SIZE[1], seed: int = 0,
            max_pixels: int = 200_000, offset: int = 0) -> "ImageCodec":
        """Learn a ``colours``-colour palette by k-means over the opaque pixels of ``images``."""
        images = [fit_size(image, height, width) for image in images]
        pixels = np.concatenate([image.reshape(-1, 4) for image in images])
        opaque = pixels[pixels[:, 3] >= ALPHA_CUT, :3]
        distinct = len(np.unique(opaque, axis=0)) if len(opaque) else 0
        if colours > distinct:
            raise GenseqError(f"asked for a palette of {colours} colours but the images hold only "
                              f"{distinct} distinct opaque colours; give --palette {max(distinct, 1)} or fewer")
        rng = np.random.default_rng(seed)
        if len(opaque) > max_pixels:
            opaque = opaque[rng.choice(len(opaque), max_pixels, replace=False)]
        centres = kmeans(opaque.astype(np.float64), colours, seed)
        transparent = bool((pixels[:, 3] < ALPHA_CUT).any())
        return cls(np.clip(np.rint(centres), 0, 255), height, width, transparent, offset)

    @classmethod
    def from_palette(cls, palette, height: int, width: int, offset: int = 0) -> "ImageCodec":
        """A codec with a given palette (the lecture's colormap), no transparency class."""
        return cls(palette, height, width, transparent=False, offset=offset)

    @property
    def vocab_size(self) -> int:
        return self.start_id + 1

    @property
    def pixels(self) -> int:
        return self.height * self.width

    def encode(self, item) -> list[int]:
        return self.encode_array(item).tolist()

    def encode_array(self, item) -> np.ndarray:
        rgba = fit_size(np.asarray(item, np.uint8), self.height, self.width).reshape(-1, 4)
        ids = nearest(rgba[:, :3].astype(np.float64), self.palette.astype(np.float64)) + self.offset
        if self.transparent:
            ids[rgba[:, 3] < ALPHA_CUT] = self.transparent_id
        return ids

    def decode(self, ids) -> np.ndarray:
        """Ids (up to H*W of them; missing pixels are transparent) -> RGBA (H, W, 4). An id that
        is no colour (the start id, a VAE's end marker) shows as transparency."""
        ids = np.asarray(ids, np.int64).reshape(-1)[:self.pixels] - self.offset
        out = np.zeros((self.pixels, 4), np.uint8)
        colour = (ids >= 0) & (ids < len(self.palette))
        out[:len(ids)][colour] = np.concatenate(
            [self.palette[ids[colour]], np.full((colour.sum(), 1), 255, np.uint8)], 1)
        if not self.transparent:  # no transparency class: anything else shows as the first colour
            out[:len(ids)][~colour] = (*self.palette[0], 255)
        return out.reshape(self.height, self.width, 4)

    def encode_stream(self, items) -> torch.Tensor:
        rows = [np.concatenate([[self.start_id], self.encode_array(item)]) for item in items]
        return torch.from_numpy(np.concatenate(rows)).to(torch.int16)

    def prime(self, prefix=None) -> list[int]:
        """The start id, then ``prefix``'s pixel ids if given (a list of ids: the kept rows)."""
        return [self.start_id, *(prefix or [])]

    recon_unit = "pixel"

    def greedy_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Greedy decoding decides each pixel's opacity before its colour (:func:`opacity_first`)."""
        return logits if self.transparent_id is None else opacity_first(logits, self.transparent_id)

    def unit_metrics(self, nats: float, items) -> dict:
        """Bits per dim (one palette index per pixel, so per pixel) and nats per pixel, the
        lecture's unit."""
        pixels = len(items) * self.pixels
        return {"bits_per_dim": nats / math.log(2) / pixels, "nats_per_pixel": nats / pixels}

    def state_dict(self) -> dict:
        return {"kind": self.kind, "palette": torch.from_numpy(self.palette.copy()),
                "height": self.height, "width": self.width, "transparent": self.transparent,
                "offset": self.offset}

    @classmethod
    def from_state(cls, state: dict) -> "ImageCodec":
        return cls(state["palette"].numpy(), state["height"], state["width"], state["transparent"],
                   state.get("offset", 0))
