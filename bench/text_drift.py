"""Does a text language model's state stay healthy past its training windows? One pass against fresh windows.

The text twin of bench/state_drift.py. A model trained on independent windows of 128 tokens has
only ever seen a state that young, while ``genseq eval`` reads a held-out stream in lanes that
carry the state through thousands of tokens, and sampling carries it for as long as a sample
runs. This reads a held-out text file twice with each model's weights fixed: in one pass, the
state carried through every token, and cut into windows of ``--reset`` tokens, each from a fresh
state. Each window's first ``--warmup`` targets are left out of both, so both readings score the
same targets and the windowed one never lacks context. A model whose state drifts scores worse
in one pass; one trained with ``--carry`` should not.

Run: OMP_NUM_THREADS=1 python bench/text_drift.py corpora/shakespeare/test.txt shakespeare [NAME=PATH ...]
     [--out bench/results/text_drift.json]
"""

import json
import math

import torch
import torch.nn.functional as F

from genseq.codecs import read_corpus
from genseq.store import load_model

from common import ROOT, make_parser


@torch.inference_mode()
def one_pass(model, stream: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Per-target NLL (nats) of stream[1:], read in one pass that carries the state."""
    out, state = [], None
    for start in range(0, len(stream) - 1, chunk):
        targets = stream[start + 1:start + chunk + 1]
        logits, state = model(stream[start:start + len(targets)][None], state)
        out.append(F.cross_entropy(logits[0], targets, reduction="none"))
    return torch.cat(out)


@torch.inference_mode()
def fresh_windows(model, stream: torch.Tensor, reset: int, batch: int = 64) -> tuple[torch.Tensor, list]:
    """Per-target NLL (nats) of each whole window of ``reset`` targets from a fresh state, (N, reset),
    and the windows' starts."""
    starts = list(range(0, len(stream) - reset - 1, reset))
    out = []
    for i in range(0, len(starts), batch):
        windows = torch.stack([stream[s:s + reset + 1] for s in starts[i:i + batch]])
        logits, _ = model(windows[:, :-1])
        out.append(F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none"))
    return torch.cat(out), starts


def main():
    parser = make_parser(__doc__)
    parser.add_argument("corpus", help="a held-out text file")
    parser.add_argument("models", nargs="+", metavar="MODEL", help="a shipped name, a file, or NAME=PATH")
    parser.add_argument("--reset", type=int, default=128, help="tokens per fresh window (the training windows')")
    parser.add_argument("--warmup", type=int, default=32, help="targets left out at each window's start")
    parser.add_argument("--out", default=str(ROOT / "bench/results/text_drift.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    result = {"corpus": args.corpus, "reset": args.reset, "warmup": args.warmup, "models": {}}
    for spec in args.models:
        name, path = spec.split("=", 1) if "=" in spec else (spec, spec)
        loaded = load_model(path, torch.device("cpu"))
        model = loaded.model.eval()
        stream = loaded.codec.encode_stream(read_corpus(args.corpus, "text")).long()
        carried = one_pass(model, stream)
        fresh, starts = fresh_windows(model, stream, args.reset)
        targets = torch.cat([torch.arange(s + args.warmup, s + args.reset) for s in starts])
        row = {"path": str(loaded.path), "tokens": len(stream), "targets": len(targets),
               "one_pass_bits_per_token": round(carried[targets].mean().item() / math.log(2), 4),
               "fresh_bits_per_token": round(fresh[:, args.warmup:].mean().item() / math.log(2), 4),
               "one_pass_all_bits_per_token": round(carried.mean().item() / math.log(2), 4)}
        result["models"][name] = row
        print(f"{name}: the same {len(targets):,} targets in bits/token: one pass {row['one_pass_bits_per_token']}, "
              f"fresh windows of {args.reset} {row['fresh_bits_per_token']} (one pass over every token: "
              f"{row['one_pass_all_bits_per_token']})", flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
