"""Peak memory from a text corpus to the first training batch: read, split, fit the tokenizer,
encode the stream, draw batch 0, as ``genseq train lm`` does before its first step.

Run: python bench/corpus_memory.py CORPUS.txt [--make 200] [--out bench/results/corpus_memory.json]
``--make MB`` first writes CORPUS.txt: the shipped Shakespeare lines, shuffled (seed 0) and
repeated to MB megabytes (the README's figure is for 200).
"""

import json
import random
import resource
import sys
from pathlib import Path

import torch

from genseq.codecs import read_corpus
from genseq.data import split_holdout
from genseq.tasks import LMTask, fingerprint, fit_codec
from genseq.train import TrainConfig

from common import ROOT, make_parser, timed


def make_corpus(path: Path, megabytes: float) -> None:
    lines = (ROOT / "corpora" / "shakespeare" / "train.txt").read_text(encoding="utf-8").splitlines()
    rng, size = random.Random(0), 0
    with open(path, "w", encoding="utf-8") as out:
        while size < megabytes * 1e6:
            rng.shuffle(lines)
            chunk = "\n".join(lines) + "\n"
            out.write(chunk)
            size += len(chunk.encode("utf-8"))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = make_parser(__doc__)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--make", type=float, default=None, metavar="MB")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.make:
        make_corpus(args.corpus, args.make)
    torch.set_num_threads(1)
    report = {"corpus": str(args.corpus), "megabytes": round(args.corpus.stat().st_size / 1e6, 1),
              "peak_mib_at_start": round(peak_mib(), 1)}
    seconds, items = timed(read_corpus, args.corpus, "text")
    report.update(lines=len(items), read_s=round(seconds, 1), peak_mib_after_read=round(peak_mib(), 1))
    train_items, valid_items = split_holdout(items, 0.05, 0)
    fingerprint(train_items)
    seconds, codec = timed(fit_codec, "text", train_items, {"vocab_size": 2000})
    report.update(tokenizer_s=round(seconds, 1), peak_mib_after_tokenizer=round(peak_mib(), 1))
    seconds, (data, facts) = timed(LMTask.data, codec, train_items, TrainConfig(batch_size=32, seq_len=128))
    data.batch(0)
    report.update(train_tokens=facts["train_tokens"], encode_s=round(seconds, 1),
                  peak_mib_at_first_batch=round(peak_mib(), 1))
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
