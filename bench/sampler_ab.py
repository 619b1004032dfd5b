"""The frame model's sampler against an earlier revision's, and where a sampling step goes.

A/B: ``genseq/models/frame.py`` as it is at git revision ``--against`` is loaded beside the
working tree's, and ``FrameLM.sample_fast`` of each samples ``--seconds`` from the same primed
state of a shipped model (``speech`` and ``piano``, primed with 1 s of a test clip), alternating
old and new ``--repeat`` times at batch 1 and 8; each reports its best time. (The revision's
sampler runs on today's model object: it must read the same attributes.)
Breakdown (working tree, speech, batch 1, 4 and 8, with the compiled loops of genseq.kernels when
Numba is installed and with the NumPy loops): the same call with the frame tier's step answered
from a cache, then with the noise drawn once and reused too. The differences are what the frame
tier and the noise cost per step; what is left is the per-sample tier (also given per take).
One process, one thread. Speeds are samples/s over the batch; ``us_per_step`` is per step of the
whole batch.
Run: OMP_NUM_THREADS=1 python bench/sampler_ab.py [--against 9c64796] [--out bench/results/sampler_ab.json]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib.util
import json
import subprocess
import tempfile
from functools import partial
from pathlib import Path

import torch

from genseq import kernels, sampler
from genseq.models import frame
from genseq.store import load_model

from common import RATE, ROOT, best_of, best_of_each, make_parser, prime_clip


def revision_module(revision: str):
    """genseq/models/frame.py at ``revision``, imported under its own name."""
    source = subprocess.run(["git", "show", f"{revision}:genseq/models/frame.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "frame_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("frame_then", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--against", default="9c64796", help="git revision of the sampler to beat")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench/results/sampler_ab.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    then = revision_module(args.against)
    steps = round(args.seconds * RATE)
    # the working tree's sampler in this process alone, like the revision's (whose takes never fork)
    one_process = partial(frame.FrameLM.sample_fast, workers=1)
    result = {"against": args.against, "seconds": args.seconds, "repeat": args.repeat, "cases": {}}

    def draw(sample, model, logits, state, batch, n=steps):  # timed whole: the batch's inputs are made inside
        sample(model, logits[:, -1].expand(batch, -1), state.repeat(batch), n, 1.0, 0)

    def best(sample, model, logits, state, batch):
        run = partial(draw, sample, model, logits, state, batch)
        return best_of(run, args.repeat, warmup=lambda: run(160))

    for corpus in ("speech", "piano"):
        loaded = load_model(corpus)
        prime, _ = prime_clip(loaded, corpus)
        with torch.inference_mode():
            logits, state = loaded.model(torch.tensor([prime]))
        for batch in (1, 8):
            samplers = {"old": then.FrameLM.sample_fast, "new": one_process}
            runs = {name: partial(draw, sample, loaded.model, logits, state, batch)
                    for name, sample in samplers.items()}
            for run in runs.values():
                run(160)  # warm up
            bests = best_of_each(runs, args.repeat)  # alternating, so that a slow spell of the host hits both
            old, new = bests["old"], bests["new"]
            case = {"batch": batch, "old_samples_per_s": round(batch * steps / old, 1),
                    "new_samples_per_s": round(batch * steps / new, 1),
                    "new_x_realtime": round(batch * steps / new / RATE, 2), "speedup": round(old / new, 3)}
            result["cases"][f"{corpus}_b{batch}"] = case
            print(f"  {corpus} batch {batch}: {case}", flush=True)

    loaded = load_model("speech")
    prime, _ = prime_clip(loaded, "speech")
    with torch.inference_mode():
        logits, state = loaded.model(torch.tensor([prime]))
    frame_step, context_gates, gumbel = sampler.FastWeights.frame_step, sampler.FastWeights.context_gates, sampler.gumbel
    cache = {}

    def once(key, function):  # the first call's answer, for every call after it
        def call(*args):
            if key not in cache:
                cache[key] = function(*args)
            return cache[key]
        return call

    compiled_loops = kernels.KERNELS
    result["breakdown_us_per_step_speech"] = {}
    for loops in ([compiled_loops] if compiled_loops else []) + [None]:
        kernels.KERNELS = loops
        for batch in (1, 4, 8):  # one take, a worker's share of 8 on two cores, 8 in one process
            parts = {"whole step": best(one_process, loaded.model, logits, state, batch)}
            try:  # the frame tier: its GRU step, and its contexts' products with the token GRU's weights
                sampler.FastWeights.frame_step = once("frame", frame_step)
                sampler.FastWeights.context_gates = once("gates", context_gates)
                parts["without the frame tier"] = best(one_process, loaded.model, logits, state, batch)
                sampler.gumbel = once("noise", gumbel)
                parts["without the frame tier and the noise"] = best(one_process, loaded.model, logits, state, batch)
            finally:
                sampler.FastWeights.frame_step, sampler.FastWeights.context_gates, sampler.gumbel = \
                    frame_step, context_gates, gumbel
                cache.clear()
            us = {name: round(seconds / steps * 1e6, 1) for name, seconds in parts.items()}
            breakdown = {**us, "frame tier": round(us["whole step"] - us["without the frame tier"], 1),
                         "noise": round(us["without the frame tier"] - us["without the frame tier and the noise"], 1),
                         "per-sample tier per take": round(us["without the frame tier and the noise"] / batch, 1)}
            result["breakdown_us_per_step_speech"][f"{loops or 'numpy'}_b{batch}"] = breakdown
            print(f"  breakdown, speech, {loops or 'numpy'} loops, batch {batch}, us per step: {breakdown}", flush=True)
    kernels.KERNELS = compiled_loops
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
