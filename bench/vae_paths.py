"""How interpolations and prior samples of a sentence VAE read, measured on a test split.

For ``--pairs`` random pairs of test lines (fixed seed) it interpolates with ``--steps`` points and
reports: the share of decoded lines with the corpus' usual length (in characters, the most common
length among the test lines) and no unknown token; the mean character edit distance between
neighbouring lines on a path; how often a path starts at its first line and ends at its second.
Paths are decoded greedily and by beam search (width 5), from the two lines' posterior means
and from their refined codes (``genseq.vae.line_codes``, the CLI's default), each reported
apart, beside the share of characters each gives back from the first 500 test lines (and of
``--train`` lines, if given). For ``--samples`` lines from the prior it reports
the share with a repeated character bigram or a character three times in a row (the peer's
苦辛苦辛辛). Prints one JSON object.

Run: python bench/vae_paths.py -m poems --test corpora/poems/wuyan/test.txt \
        --train corpora/poems/wuyan/train.txt
"""

import collections
import itertools
import json
import random

import torch

import genseq
from genseq.codecs.text import read_text_corpus
from genseq.vae import REFINE_STEPS, interpolate, recon_accuracy, reconstruct, sample_prior

from common import make_parser


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def repetitive(line: str) -> bool:
    bigrams = [line[i:i + 2] for i in range(len(line) - 1)]
    triple = any(line[i] == line[i + 1] == line[i + 2] for i in range(len(line) - 2))
    return triple or len(bigrams) != len(set(bigrams))


def main():
    parser = make_parser(__doc__)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--train", help="also measure reconstruction on the first 500 of these lines")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    loaded = genseq.load(args.model, "cpu")
    loaded.require("vae_paths", "vae", ("text",))
    lines = read_text_corpus(args.test)
    usual = collections.Counter(len(line) for line in lines).most_common(1)[0][0]
    report = {"model": str(loaded.path), "test": args.test, "pairs": args.pairs, "steps": args.steps,
              "usual_length": usual}
    for decode, refine in (("greedy", 0), ("beam", 0), ("greedy", REFINE_STEPS), ("beam", REFINE_STEPS)):
        name = f"{decode}_refined" if refine else decode
        rng = random.Random(args.seed)  # the same pairs for every decoding
        decoded, distances, starts, ends = [], [], 0, 0
        for _ in range(args.pairs):
            a, b = rng.sample(lines, 2)
            path = [line for _, line in interpolate(loaded, a, b, args.steps, warn=lambda _: None, refine=refine,
                                                     decode=decode)]
            decoded += path
            distances += [edit_distance(x, y) for x, y in itertools.pairwise(path)]
            starts += path[0] == a
            ends += path[-1] == b
        well_formed = sum(len(x) == usual and "⁇" not in x for x in decoded)
        report[name] = {
            "well_formed_share": round(well_formed / len(decoded), 4),
            "mean_neighbour_edit_distance": round(sum(distances) / len(distances), 3),
            "path_starts_at_first_line": round(starts / args.pairs, 3),
            "path_ends_at_second_line": round(ends / args.pairs, 3),
        }
        for split, split_path in (("test", args.test), ("train", args.train)):
            if split_path:
                given = read_text_corpus(split_path)[:500]
                back = reconstruct(loaded, given, warn=lambda _: None, refine=refine, decode=decode)
                accuracy = recon_accuracy(loaded.codec, given, back)["recon_char_accuracy"]
                report[name][f"recon_char_accuracy_{split}"] = round(accuracy, 4)
    samples = sample_prior(loaded, args.samples, seed=args.seed)
    report.update({
        "prior_samples": args.samples,
        "prior_repetitive_share": round(sum(map(repetitive, samples)) / len(samples), 4),
        "prior_distinct_share": round(len(set(samples)) / len(samples), 4),
        "prior_examples": samples[:10],
    })
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
