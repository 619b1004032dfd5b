"""What the benches share: the repository's paths, the audio prime, the argument parser and the timers.

Every time is wall-clock seconds of ``time.perf_counter()`` around the call alone: whatever the
caller builds for it (its arguments) is built before the clock starts. A bench imports this as
``from common import ...`` (it runs as ``python bench/NAME.py``, so bench/ is on the path); benches
never import each other.
"""

import argparse
import glob
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
RATE = 16000  # the audio models' sample rate
TEST_CLIPS = {"speech": "corpora/audio/speech/test", "piano": "corpora/audio/piano/test"}


def prime_clip(loaded, corpus: str):
    """The first 1 s of the first test clip of ``corpus`` at least 1 s long, as model ids."""
    for path in sorted(glob.glob(str(ROOT / TEST_CLIPS[corpus] / "*.wav"))):
        clip = loaded.codec.read(path)
        if len(clip) >= RATE:
            return loaded.codec.prime(clip[:RATE]), Path(path).name
    raise SystemExit(f"no test clip of {corpus} is 1 s long")


def make_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the first line of ``doc`` (a bench's ``__doc__``)."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


def timed(fn, *args, **kwargs):
    """``(seconds, result)`` of one call ``fn(*args, **kwargs)``; only the call is timed."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def best_of(fn, repeat: int, *args, warmup=True, **kwargs) -> float:
    """The least seconds of ``repeat`` timed calls ``fn(*args, **kwargs)`` (infinity for none).

    First, untimed: ``warmup=True`` makes the same call once, a callable is called once with no
    arguments (a shorter warm-up call), ``False`` makes none.
    """
    if warmup is True:
        fn(*args, **kwargs)
    elif warmup:
        warmup()
    return min((timed(fn, *args, **kwargs)[0] for _ in range(repeat)), default=float("inf"))


def best_of_each(calls: dict, repeat: int) -> dict:
    """The least seconds of each of ``calls`` (name: call without arguments) over ``repeat`` rounds.

    Each round times every call once, in order, so that a slow spell of the host hits them all.
    No warm-up: the caller makes its own first.
    """
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            times[name].append(timed(call)[0])
    return {name: min(seconds) for name, seconds in times.items()}


def write_result(path, result: dict) -> None:
    """``result`` as indented JSON at ``path``, and a line that says so."""
    Path(path).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
