"""Peak memory and time of priming the speech model with a long clip, as ``genseq continue`` does.

Run: python bench/prime_memory.py [--minutes 2 10] [--out bench/results/prime_memory.json]
Each length runs in a fresh process (peak RSS is a high-water mark): the clip is the speech
corpus's training clips, repeated to that length, primed and continued by 16 samples.
"""

import json
import resource
import subprocess
import sys

from common import ROOT, make_parser

CHILD = """
import glob, json, resource, sys, time
import numpy as np, soundfile as sf, torch
import genseq
torch.set_num_threads(2)
model = genseq.load("speech", "cpu")
clips = [sf.read(f, dtype="float32")[0] for f in sorted(glob.glob(sys.argv[2] + "/*.wav"))]
n = int(float(sys.argv[1]) * 60 * 16000)
wave = np.resize(np.concatenate(clips), n)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
model.continue_(wave, seconds=0.001, seed=0)
print(json.dumps({"minutes": float(sys.argv[1]), "prime_s": round(time.perf_counter() - start, 1),
                  "peak_mib_before": round(before, 1),
                  "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = []
    for minutes in args.minutes:
        done = subprocess.run([sys.executable, "-c", CHILD, str(minutes), str(ROOT / "corpora/audio/speech/train")],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
