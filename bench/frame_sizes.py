"""How fast would a smaller audio frame model sample? Sizes for the next shipped audio models.

The sampler's step costs about the same for 4 takes as for 8: the frame tier streams its weights
from the L3 cache once per frame whatever the batch, and the per-sample tier is some twenty NumPy
calls. So 8 takes on 2 cores sit near 8x real time with the shipped models (``bench/audio_speed.py``),
and what moves them is a cheaper model. This times ``generate`` (8 takes of ``--seconds`` after a
1 s prime, as ``bench/audio_speed.py`` does) for the shipped ``speech`` model and for frame models of
other sizes with random weights (the speed of these loops does not depend on the values), in
this process alone (``workers=1``) and shared out among the CPU cores. Sizes alternate within
each repeat, so that a slow spell of the host hits them all; each reports its best time and its
ratio to the shipped size. Quality is not measured here: a size must be trained (on a GPU; see
``recipes/models/run.sh speech``) and scored before it ships.
Run: OMP_NUM_THREADS=1 python bench/frame_sizes.py [--repeat 5] [--out bench/results/frame_sizes.json]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import dataclasses
import json
from functools import partial

import torch

from genseq.generate import generate
from genseq.models.frame import FrameLM
from genseq.workers import available_cpus
from genseq.store import load_model

from common import RATE, ROOT, best_of_each, make_parser, prime_clip

SIZES = {  # name: changes to the shipped speech config
    "shipped": {},
    "frame_hidden_256": {"frame_hidden": 256},
    "frame_32": {"frame": 32},
    "frame_hidden_256_frame_32": {"frame_hidden": 256, "frame": 32},
    "head_hidden_64": {"head_hidden": 64},
}


def frame_tier_mib(model: FrameLM) -> float:
    """Bytes of float32 weights the frame tier reads per frame (its matrices), in MiB."""
    layers = [model.frame_in, model.frame_out]
    count = sum(layer.weight.numel() for layer in layers)
    count += sum(p.numel() for name, p in model.frame_rnn.named_parameters() if name.startswith("weight"))
    return count * 4 / 2**20


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench/results/frame_sizes.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    loaded = load_model("speech")
    prime, clip = prime_clip(loaded, "speech")
    models = {}
    for name, change in SIZES.items():
        models[name] = loaded.model if not change else \
            FrameLM(dataclasses.replace(loaded.model.config, **change)).eval()
    steps = round(args.seconds * RATE)
    cores = available_cpus()
    runs = [(name, workers) for name in models for workers in (1, None)]
    for name, workers in runs:  # warm up
        generate(models[name], prime, 320, batch=args.batch, seed=0, workers=workers)
    bests = best_of_each({(name, workers): partial(generate, models[name], prime, steps, batch=args.batch, seed=0,
                                                   workers=workers) for name, workers in runs}, args.repeat)
    result = {"batch": args.batch, "seconds": args.seconds, "prime_clip": clip, "prime_samples": len(prime),
              "repeat": args.repeat, "cores": cores, "sizes": {}}
    for name, model in models.items():
        c = model.config
        case = {"frame": c.frame, "frame_hidden": c.frame_hidden, "token_hidden": c.token_hidden,
                "head_hidden": c.head_hidden, "parameters": sum(p.numel() for p in model.parameters()),
                "frame_tier_mib": round(frame_tier_mib(model), 2)}
        for workers, label in ((1, "one_process"), (None, "cores")):
            best = bests[name, workers]
            x = args.batch * steps / best / RATE
            base = args.batch * steps / bests["shipped", workers] / RATE
            case[label] = {"best_s": round(best, 3), "x_realtime": round(x, 2), "vs_shipped": round(x / base, 2)}
        result["sizes"][name] = case
        print(f"  {name:<28} {case['frame_tier_mib']:5.2f} MiB  one process {case['one_process']['x_realtime']:5.2f}x"
              f"  {cores} cores {case['cores']['x_realtime']:5.2f}x  (x{case['cores']['vs_shipped']} the shipped)",
              flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
