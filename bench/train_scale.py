"""Scale: training throughput and final held-out bits/char with 1 and 2 processes (torchrun, gloo,
CPU) at the same global batch, and the memory of text generation for 100 and 1,000 tokens (peak
RSS must not grow with length).

Each training case runs ``genseq train lm`` on the Shakespeare corpus with the same global batch
(32 x 128 tokens, the shipped model's 2 x 384 GRU) for a fixed number of steps, one thread per
process, and reads tokens/s from the run's metrics.jsonl (the mean over logged windows after the
first). Each memory case is a fresh process that loads the shipped model and generates.
Run: python bench/train_scale.py [--steps 150] [--out bench/results/train_scale.json]
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, make_parser

CORPUS = ROOT / "corpora" / "shakespeare" / "train.txt"
MODEL = ["--hidden", "384", "--layers", "2", "--embed", "256", "--vocab-size", "2000", "--batch-size", "32",
         "--seq-len", "128", "--quiet", "--device", "cpu"]
MEMORY_CHILD = """
import resource, sys, torch
from genseq.generate import generate
from genseq.store import load_model
torch.set_num_threads(1)
loaded = load_model("shakespeare")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
generate(loaded.model, loaded.codec.prime("To be"), int(sys.argv[1]), seed=0)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(before, after)
"""


def train_run(processes: int, steps: int) -> tuple[float, float]:
    """Training tokens/s and the final held-out bits per character."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        launcher = [sys.executable, "-m", "genseq"] if processes == 1 else \
            [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
             "--master_port=29531", "-m", "genseq"]
        subprocess.run([*launcher, "train", "lm", str(CORPUS), "-o", str(run), "--steps", str(steps),
                        "--valid-every", str(steps), *MODEL], check=True, capture_output=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
        entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        rates = [e["tokens_per_s"] for e in entries if e["split"] == "train"]
        final = [e for e in entries if e["split"] == "valid"][-1]
        return sum(rates[1:]) / len(rates[1:]), final["bits_per_char"]


def peak_rss(tokens: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tokens)], check=True, capture_output=True,
                         text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()
    return float(out[0]), float(out[1])


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "train_scale.json"))
    args = parser.parse_args()
    memory = {tokens: peak_rss(tokens) for tokens in (100, 1000)}
    (one, one_bpc), (two, two_bpc) = train_run(1, args.steps), train_run(2, args.steps)
    report = {"cpu_count": os.cpu_count(), "steps": args.steps, "global_batch": "32 x 128 tokens",
              "train_tokens_per_s": {"1 process": round(one), "2 processes": round(two)},
              "speedup_2_over_1": round(two / one, 2),
              "final_valid_bits_per_char": {"1 process": round(one_bpc, 4), "2 processes": round(two_bpc, 4)},
              "generation_peak_rss_mib": {f"{t} tokens": {"before": round(b, 1), "after": round(a, 1)}
                                          for t, (b, a) in memory.items()}}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
