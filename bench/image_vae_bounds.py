"""How much of a held-out sprite any 10-number code could give back: two ceilings for an image
VAE's ``recon_pixel_accuracy`` (the share of pixels, transparent ones included, that decoding
gets exactly right, palette index for palette index).

- ``nearest``: each test sprite drawn as the training sprite, or its mirror image, that agrees
  with it on most pixels (a code that names the closest creature it has seen);
- ``silhouette_and_colour``: an oracle that knows the test sprite's silhouette exactly and paints
  every body pixel in that sprite's own commonest colour;
- ``sprites_lm_argmax`` (creatures): the shipped ``sprites`` language model's likeliest pixel at
  each position, given every true pixel before it (the rows above, the pixels to its left), in
  its own palette. Not a ceiling in the strict sense, since a code sees the whole sprite, but a
  predictor told far more than the 30-50 nats a 10-number code holds.

Creatures: the shipped corpus's train and test splits at 32 x 32 with a 167-colour palette fitted
on the training sprites, as ``genseq train vae`` fits it. The lecture's Pokemon (``--lecture
FOLDER``, never shipped): the first 712 train, the last 80 test, the lecture's colormap; their
background is a palette colour, so a sprite's body is what differs from its corner pixel.
Run: python bench/image_vae_bounds.py [--lecture ../shared/benchmarks/pokemon-lecture]
"""

import json

import numpy as np
import torch

from genseq import api
from genseq.codecs.image import ImageCodec, read_image_corpus

from common import ROOT, make_parser


def bounds(train: np.ndarray, test: np.ndarray, background: np.ndarray, width: int) -> dict:
    """train (N, P), test (M, P) palette ids; background (M, P) True where a test pixel is background."""
    mirrored = train.reshape(len(train), -1, width)[..., ::-1].reshape(len(train), -1)
    known = np.concatenate([train, mirrored])
    nearest = np.mean([(known == row).mean(1).max() for row in test])
    painted = []
    for row, clear in zip(test, background):
        body = row[~clear]
        commonest = np.bincount(body).argmax() if len(body) else -1
        painted.append((clear.sum() + (body == commonest).sum()) / len(row))
    return {"nearest": round(float(nearest), 4), "silhouette_and_colour": round(float(np.mean(painted)), 4),
            "background_share": round(float(background.mean()), 4), "test_items": len(test)}


@torch.inference_mode()
def lm_argmax(model: api.Model, images: list) -> float:
    """The share of pixels that are the language model's likeliest, teacher-forced (greedy's
    rule: opacity first, then colour)."""
    codec, hits, total = model.codec, 0, 0
    for image in images:
        ids = torch.from_numpy(codec.encode_array(image)).long()
        logits, _ = model.model(torch.cat([torch.tensor([codec.start_id]), ids[:-1]])[None])
        hits += (codec.greedy_logits(logits[0].float()).argmax(-1) == ids).sum().item()
        total += len(ids)
    return round(hits / total, 4)


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--lecture", default=None, help="folder with pixel_color.txt and colormap.txt")
    parser.add_argument("--out", default=str(ROOT / "bench/results/image_vae_bounds.json"))
    args = parser.parse_args()
    corpus = ROOT / "corpora/sprites/creatures"
    train_images, test_images = (read_image_corpus(corpus / split) for split in ("train", "test"))
    codec = ImageCodec.fit(train_images, 167, 32, 32)
    train, test = (np.stack([codec.encode_array(image) for image in images]) for images in (train_images, test_images))
    result = {"creatures": bounds(train, test, test == codec.transparent_id, codec.width)}
    result["creatures"]["sprites_lm_argmax"] = lm_argmax(api.load("sprites", device="cpu"), test_images)
    if args.lecture:
        ids = np.loadtxt(f"{args.lecture}/pixel_color.txt", dtype=np.int64)
        train, test = ids[:712], ids[712:]
        result["lecture"] = bounds(train, test, test == test[:, :1], 20)
    for name, row in result.items():
        print(f"{name}: {row}")
    with open(args.out, "w") as f:
        f.write(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
