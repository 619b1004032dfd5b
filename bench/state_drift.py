"""Does an audio model's state stay healthy over seconds? NLL by position, read in one pass or from fresh states.

A frame model trained on independent windows of 1,024-2,048 samples has only ever seen a state at
most that old; sampling runs it for minutes. This scores each held-out clip (its first
``--seconds``) twice with the model's weights fixed: once in one pass from the start, the state
carried through every sample (as sampling carries it), and once cut into windows of ``--reset``
samples, each from a fresh state. Both are reported as bits per sample over bands of position;
each window's first ``--warmup`` samples are left out of both, so the two see the same targets
and the windowed reading never lacks context. A model whose state drifts scores worse in one
pass the further it reads; one trained with ``--carry`` (lanes of windows that carry the state)
should score better in one pass than from fresh states.

Run: OMP_NUM_THREADS=1 python bench/state_drift.py piano corpora/audio/piano/test corpora/audio/piano/valid
     [--model NAME=PATH ...] [--out bench/results/state_drift.json]
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genseq.codecs.audio import audio_files
from genseq.store import load_model

from common import ROOT, make_parser

BANDS_S = [0, 1, 2, 4, 8, 15]  # bands of position, in seconds


@torch.inference_mode()
def nll(model, ids: torch.Tensor) -> np.ndarray:
    """Per-target NLL (nats) of ids[1:] read from a fresh state in one call."""
    logits, _ = model(ids[None, :-1])
    return F.cross_entropy(logits[0], ids[1:], reduction="none").numpy()


def drift(loaded, clips: list, reset: int, warmup: int, seconds: float) -> dict:
    rate = loaded.codec.sample_rate
    bands = [s * rate for s in BANDS_S]
    total = {"one_pass": np.zeros(len(bands) - 1), "fresh": np.zeros(len(bands) - 1)}
    count = np.zeros(len(bands) - 1)
    for path in clips:
        ids = loaded.codec.encode_tensor(torch.as_tensor(loaded.codec.read(path))).long()
        ids = ids[:int(seconds * rate) + 1]
        one_pass = nll(loaded.model, ids)
        fresh = np.concatenate([nll(loaded.model, ids[s:s + reset + 1]) for s in range(0, len(ids) - 1, reset)])
        keep = np.arange(len(one_pass)) % reset >= warmup
        for i, (a, b) in enumerate(zip(bands, bands[1:])):
            band = keep[a:b]
            total["one_pass"][i] += one_pass[a:b][band].sum()
            total["fresh"][i] += fresh[a:b][band].sum()
            count[i] += band.sum()
    rows = []
    for i, (a, b) in enumerate(zip(BANDS_S, BANDS_S[1:])):
        if count[i]:
            rows.append({"from_s": a, "to_s": b, "targets": int(count[i]),
                         "one_pass_bits": round(total["one_pass"][i] / count[i] / np.log(2), 4),
                         "fresh_bits": round(total["fresh"][i] / count[i] / np.log(2), 4)})
    return {"bands": rows}


def main():
    parser = make_parser(__doc__)
    parser.add_argument("model", help="the shipped model (or a model file) to read with")
    parser.add_argument("folders", nargs="+", help="folders of held-out clips")
    parser.add_argument("--model", dest="extra", action="append", default=[], metavar="NAME=PATH",
                        help="more models to read the same clips with")
    parser.add_argument("--reset", type=int, default=2048, help="samples per window of the fresh reading")
    parser.add_argument("--warmup", type=int, default=512, help="samples of each window left out of both")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of each clip read")
    parser.add_argument("--out", default=str(ROOT / "bench/results/state_drift.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips = [p for folder in args.folders for p in audio_files(Path(folder))]
    models = {args.model: args.model, **dict(e.split("=", 1) for e in args.extra)}
    result = {"clips": [str(p) for p in clips], "reset": args.reset, "warmup": args.warmup,
              "seconds": args.seconds, "models": {}}
    for name, spec in models.items():
        result["models"][name] = drift(load_model(spec), clips, args.reset, args.warmup, args.seconds)
        print(f"{name}: bits per sample, one pass | fresh every {args.reset} samples")
        for row in result["models"][name]["bands"]:
            print(f"  {row['from_s']:5.1f}-{row['to_s']:<5.1f} s  {row['one_pass_bits']:.3f} | {row['fresh_bits']:.3f}")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
