"""Sprite drawing speed: sprites/s of the shipped `sprites` model at batch 1, 64 and 256.

Batch generation is the normal path for images: every sprite in a batch advances one pixel per
step, so the per-step cost is shared. Each case is timed best-of-3 after a warm-up, in one process
(``workers=1``); then batch 64 and 256 as ``genseq sample`` draws them, shared out among one forked
worker per CPU core.
Run: python bench/sprites_speed.py [--device cpu|cuda] [--threads 1]
"""

import json
from pathlib import Path

import torch

from genseq.device import pick_device
from genseq.workers import available_cpus
from genseq.store import load_model
from genseq.tasks import sample_images

from common import best_of, make_parser


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sprites_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    loaded = load_model("sprites", device)
    sample_images(loaded, 2, seed=0)  # warm up
    report = {"device": str(device), "threads": args.threads, "cores": available_cpus(), "sprites_per_s": {}}
    for batch, workers in ((1, 1), (64, 1), (256, 1), (64, None), (256, None)):
        best = best_of(sample_images, 3, loaded, batch, seed=0, workers=workers, warmup=False)  # warmed up above
        name = f"batch {batch}" + ("" if workers == 1 else ", one worker per core")
        report["sprites_per_s"][name] = round(batch / best, 1)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
