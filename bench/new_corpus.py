"""Train on corpora genseq never ships, as a new user would, and score the result on held-out data:
the defaults (what genseq.sizing chooses) against the old defaults (the shipped models' sizes,
given as flags), at a few CPU budgets.

    apt-get install fortunes espeak-ng              # the text and the voices the corpora are made of
    python bench/new_corpus.py --make /tmp/corpora  # write the corpora once
    python bench/new_corpus.py --corpora /tmp/corpora --minutes 10 [--only prose,sayings] [--threads 1 --parallel 2]

Corpora (made from Debian packages, or the lecture's benchmark, never copied into the repository):
  prose     the ``fortunes`` package's texts, one line per line; LM, scored in bits/char on the last 5%
  sayings   its one-line sayings of 20-70 characters (~3,000); sentence VAE, scored on 200 held out
  sayings-lm  the same sayings for an LM (a small corpus, 136 KB): bits/char on the 200 held out, from
            best.pt and from model.pt, what ``-m RUN`` loads
  speech    200 of those sayings read by espeak-ng in five voices; LM, bits/sample on 20 more
  lecture   the lecture's 792 Pokemon in its pixel format (LECTURE=folder); LM, nats/pixel on the last 80
Each run is ``genseq train ... --minutes M`` in a process of its own with ``--threads`` threads,
``--parallel`` at a time; results go to bench/results/new_corpus.json.
"""

import json
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT, make_parser

from genseq.store import read_file

FORTUNES = Path("/usr/share/games/fortunes")
OLD = {  # the defaults before genseq.sizing: the shipped models' sizes
    "prose": ["--hidden", "512", "--embed", "256", "--precision", "float32", "--lr", "3e-3"],
    "sayings-lm": ["--hidden", "512", "--embed", "256", "--layers", "2", "--vocab-size", "2000", "--dropout", "0.1",
                   "--precision", "float32", "--lr", "3e-3"],
    "sayings": ["--hidden", "512", "--embed", "256", "--batch-size", "64", "--lr", "1e-3", "--vocab-size", "2000",
                "--free-bits", "0.5", "--word-dropout", "0.25", "--kl-schedule", "cyclical", "--latent", "32",
                "--splice", "0"],
    "speech": ["--hidden", "384", "--frame", "16", "--batch-size", "32", "--seq-len", "2048"],
    "lecture": ["--hidden", "512", "--dropout", "0.2"],
}


def fortune_texts() -> list[str]:
    texts = []
    for path in sorted(p for p in FORTUNES.glob("*") if p.is_file() and not p.suffix):
        data = path.read_bytes()
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(data.decode("latin-1"))
    if not texts:
        raise SystemExit(f"no fortunes in {FORTUNES}: apt-get install fortunes")
    return texts


def make(folder: Path) -> None:
    """Write the prose, sayings and speech corpora (and the lecture's split, if LECTURE is set)."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = fortune_texts()
    lines = [line for text in texts for line in text.splitlines() if line.strip() and line.strip() != "%"]
    cut = int(len(lines) * 0.95)
    (folder / "prose_train.txt").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    (folder / "prose_test.txt").write_text("\n".join(lines[cut:]) + "\n", encoding="utf-8")
    sayings = sorted({entry.strip() for text in texts for entry in text.split("\n%\n")
                      if "\n" not in entry.strip() and 20 <= len(entry.strip()) <= 70
                      and re.fullmatch(r"[A-Za-z0-9 ,.;:'!?\-\"()]+", entry.strip())})
    random.Random(0).shuffle(sayings)
    (folder / "sayings_train.txt").write_text("\n".join(sayings[:-200]) + "\n", encoding="utf-8")
    (folder / "sayings_test.txt").write_text("\n".join(sayings[-200:]) + "\n", encoding="utf-8")
    (folder / "sayings_train300.txt").write_text("\n".join(sayings[:300]) + "\n", encoding="utf-8")
    rng = random.Random(0)
    for split, start, count in (("train", 0, 200), ("test", 200, 20)):
        (folder / f"speech_{split}").mkdir(exist_ok=True)
        for i, line in enumerate(sayings[start:start + count], start):
            voice = rng.choice(["en", "en-us", "en-gb-x-rp", "en+f3", "en+m3"])
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(rng.randint(140, 190)), "-w",
                            str(folder / f"speech_{split}" / f"s{i:03d}.wav"), line], check=True)
    lecture = os.environ.get("LECTURE")
    if lecture:
        rows = Path(lecture, "pixel_color.txt").read_text().splitlines()
        (folder / "lecture_train.txt").write_text("\n".join(rows[:712]) + "\n")
        (folder / "lecture_test.txt").write_text("\n".join(rows[712:]) + "\n")
    print(f"wrote {len(lines):,} prose lines, {len(sayings):,} sayings and 220 spoken ones to {folder}")


def genseq(*args, threads: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "genseq", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT)


def score(corpus: str, folder: Path, run: Path, threads: int) -> dict:
    """Held-out scores of one run, as ``genseq eval --json`` gives them."""
    colormap = ["--colormap", Path(os.environ.get("LECTURE", ""), "colormap.txt")] if corpus == "lecture" else []
    if corpus == "sayings":
        test = json.loads(genseq("eval", folder / "sayings_test.txt", "-m", run, "--json", "--iw-samples", 100,
                                 threads=threads).stdout)
        train = json.loads(genseq("eval", folder / "sayings_train300.txt", "-m", run, "--json", "--iw-samples", 1,
                                  threads=threads).stdout)
        return {"iw_nll": test["iw_nll"], "kl": test["kl"], "active_units": test["active_units"],
                "test_recon": test["recon_char_accuracy"], "test_recon_refined": test["recon_char_accuracy_refined"],
                "train_recon": train["recon_char_accuracy"], "train_recon_refined": train["recon_char_accuracy_refined"]}
    if corpus == "sayings-lm":  # a small corpus overfits: the last model, which -m RUN loads, too
        return {f"bits_per_char_{name}": json.loads(genseq("eval", folder / "sayings_test.txt", "-m", run / file,
                                                           "--json", threads=threads).stdout)["bits_per_char"]
                for name, file in (("best", "best.pt"), ("last", "model.pt"))}
    test = folder / {"prose": "prose_test.txt", "speech": "speech_test", "lecture": "lecture_test.txt"}[corpus]
    metrics = json.loads(genseq("eval", test, "-m", run / "best.pt", "--json", *colormap, threads=threads).stdout)
    unit = {"prose": "bits_per_char", "speech": "bits_per_sample", "lecture": "nats_per_pixel"}[corpus]
    return {unit: metrics[unit]}


def one_run(corpus: str, which: str, folder: Path, minutes: float, threads: int, runs: Path,
            rescore: bool = False) -> dict:
    """Train one run and score it; with ``rescore``, score the run already in ``runs`` again."""
    task = "vae" if corpus == "sayings" else "lm"
    train = folder / {"prose": "prose_train.txt", "sayings": "sayings_train.txt", "sayings-lm": "sayings_train.txt",
                      "speech": "speech_train", "lecture": "lecture_train.txt"}[corpus]
    colormap = ["--colormap", Path(os.environ.get("LECTURE", ""), "colormap.txt")] if corpus == "lecture" else []
    run = runs / f"{corpus}-{which}-{minutes:g}min"
    flags = OLD[corpus] if which == "old" else []
    if rescore:
        chosen = (read_file(run / "model.pt").get("chosen") or {}).get("reason", "")
    else:
        done = genseq("train", task, train, "-o", run, "--minutes", minutes, "--quiet", "--device", "cpu", *colormap,
                      *flags, threads=threads)
        if done.returncode:
            raise SystemExit(f"{run}: {done.stderr[-2000:]}")
        chosen = next((line for line in done.stderr.splitlines() if line.startswith("chose ")), "")
    steps = max(json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines())
    result = {"corpus": corpus, "defaults": which, "minutes": minutes, "steps": steps, "flags": " ".join(flags),
              "chosen": chosen, **score(corpus, folder, run, threads)}
    print(json.dumps(result), flush=True)
    return result


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--make", type=Path, default=None, help="Write the corpora into this folder and stop.")
    parser.add_argument("--corpora", type=Path, default=Path("/tmp/corpora"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    parser.add_argument("--only", default="prose,sayings,sayings-lm,speech,lecture")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/new_corpus_runs"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "new_corpus.json")
    parser.add_argument("--rescore", action="store_true",
                        help="Score the runs already in --runs again (after a change to scoring) instead of training.")
    args = parser.parse_args()
    if args.make:
        return make(args.make)
    jobs = [(corpus, which, minutes) for minutes in args.minutes for corpus in args.only.split(",")
            for which in ("old", "new")]
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: one_run(*job[:2], args.corpora, job[2], args.threads, args.runs,
                                                    args.rescore), jobs))
    args.out.write_text(json.dumps({"threads": args.threads, "parallel": args.parallel, "results": results},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
