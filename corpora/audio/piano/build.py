"""Build a small piano corpus: Bach chorales from music21, rendered with FluidSynth.

Source
    The Bach chorales of the corpus shipped in the PyPI package ``music21``
    (built with 10.5.1; BSD-3-Clause; the chorales themselves are in the
    public domain).  ``music21.corpus.chorales.Iterator()`` walks the 371
    Riemenschneider numbers; some numbers share a file, leaving 350 distinct
    works (``bach/bwv10.7`` ...).  ``music21`` is needed only by this script,
    not by genseq (``pip install music21``).  Rendering uses Debian's
    ``fluidsynth`` and the General MIDI SoundFont ``FluidR3_GM.sf2`` from
    ``fluid-soundfont-gm`` (``apt-get install fluidsynth fluid-soundfont-gm``).
    Python packages: music21, numpy, soundfile.

Rendering
    Each chorale is parsed, every part's instruments are replaced by a piano,
    a tempo of ``TEMPO_QPM`` crotchets a minute is set (8 encodings carry
    tempo marks, which are removed first, so all chorales share one tempo),
    and the score is written to MIDI; every program change in the MIDI
    is then forced to 0 (Acoustic Grand Piano) as a safeguard.  music21's
    MIDI export expands repeats; a chorale whose repeat marks it cannot
    expand ("badly formed repeats", e.g. ``bach/bwv277``) has them removed
    and is played straight through.  Fermatas are not held.
    FluidSynth renders it at 16 kHz (``fluidsynth -ni -q -r 16000 -F out.wav
    SF2 in.mid``, default gain, reverb and chorus), always under ``timeout
    60``; a chorale whose render fails or times out is reported and left out.
    The stereo output is averaged to mono, normalised to a peak of
    ``PEAK_DBFS``, leading and trailing 10 ms frames with an RMS below
    ``TRIM_DBFS`` are cut (keeping ``PAD_S`` of margin), the peak is
    normalised again, and the result is written as mono 16 kHz WAV, 8-bit
    mu-law (soundfile subtype ``ULAW``) named after the work with ``.``
    replaced by ``_`` (``bach/bwv10.7`` -> ``bwv10_7.wav``).

Split
    The 350 works are sorted by corpus name; index % 20 == 0 goes to test,
    == 1 to valid, the rest to train.  The split does not depend on the
    budget, so the committed files are a subset of the ``--full`` ones.

Budget
    The whole set is about five hours of audio, far beyond what is committed.
    By default only as many chorales are rendered as fit in ``BUDGET_BYTES``
    (WAV files counted in 4 KiB disk blocks, as ``du`` does): test and valid
    each get a ``HELD_OUT_SHARE`` of it, train the rest (including what test
    and valid left unused).  Within a split, chorales are taken in the order
    of the SHA-1 of their names (a fixed, well-mixed order); one that does
    not fit is skipped, and the split stops after ``MAX_MISSES`` such misses
    in a row.  ``--full`` renders every chorale.  Old WAV files in the split
    folders are removed first.

Output (next to this file, or in ``--out``)
    ``train/ valid/ test/*.wav``.  The committed files are the budget's; the shipped ``piano``
    model trains on ``--full --out runs/piano-corpus`` (recipes/models/run.sh), 350 chorales,
    4.7 hours (4.2 of them train), 256 MiB, byte for byte the same renders where the two overlap.

Rebuild::

    nice -n 10 python corpora/audio/piano/build.py [--full] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # corpora/audio/common.py
from common import BUDGET_BYTES, SAMPLE_RATE, disk_bytes, process, split_of  # noqa: E402

MUSIC21_VERSION = "10.5.1"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
OUT_DIR = Path(__file__).resolve().parent

TEMPO_QPM = 80
RENDER_TIMEOUT_S = 60
SPLITS = ("train", "valid", "test")
HELD_OUT_SHARE = 0.15  # of the budget, for each of test and valid
MAX_MISSES = 3


# --------------------------------------------------------------------------
# Score to audio
# --------------------------------------------------------------------------


def chorale_names() -> list[str]:
    """Distinct corpus names of the Riemenschneider chorales, sorted."""
    from music21.corpus import chorales

    return sorted(set(chorales.Iterator(returnType="filename")))


def remove_repeats(score) -> None:
    """Turn repeat barlines into plain ones and drop repeat marks and brackets."""
    from music21 import bar, repeat, spanner, stream

    for measure in score.recurse().getElementsByClass(stream.Measure):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = bar.Barline("regular")
    marks = score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))
    for mark in list(marks):
        mark.activeSite.remove(mark)


def write_piano_midi(name: str, path: Path) -> bool:
    """Write chorale ``name`` as a MIDI file with every part on a piano.

    Returns True if its repeats could not be expanded and it is played
    straight through instead.
    """
    from music21 import corpus, instrument, midi, repeat, tempo

    straight = False
    score = corpus.parse(name)
    for part in score.parts:
        for inst in list(part.recurse().getElementsByClass(instrument.Instrument)):
            inst.activeSite.remove(inst)
        part.insert(0, instrument.Piano())
    for mark in list(score.recurse().getElementsByClass(tempo.TempoIndication)):
        mark.activeSite.remove(mark)  # 8 chorales carry one; all play at TEMPO_QPM
    score.insert(0, tempo.MetronomeMark(number=TEMPO_QPM))
    try:
        mf = midi.translate.streamToMidiFile(score)  # expands repeats
    except repeat.ExpanderException:
        remove_repeats(score)
        mf = midi.translate.streamToMidiFile(score)
        straight = True
    for track in mf.tracks:
        for event in track.events:
            if event.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE:
                event.data = 0  # Acoustic Grand Piano
    mf.open(str(path), "wb")
    try:
        mf.write()
    finally:
        mf.close()
    return straight


def render(midi_path: Path, wav_path: Path) -> np.ndarray | None:
    """Render with FluidSynth at 16 kHz; mono float64, or None on failure."""
    cmd = [
        "timeout", str(RENDER_TIMEOUT_S), "fluidsynth", "-ni", "-q",
        "-r", str(SAMPLE_RATE), "-F", str(wav_path), str(SOUNDFONT), str(midi_path),
    ]
    result = subprocess.run(cmd, capture_output=True)
    if result.returncode != 0 or not wav_path.exists():
        print(f"  fluidsynth failed (rc {result.returncode}) on {midi_path.name}", file=sys.stderr)
        return None
    audio, rate = sf.read(wav_path, always_2d=True)
    if rate != SAMPLE_RATE:
        sys.exit(f"fluidsynth wrote {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)










# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------




def stem_of(name: str) -> str:
    return Path(name).name.replace(".", "_")  # bach/bwv10.7 -> bwv10_7


def build(full: bool, tmp: Path, out_dir: Path = OUT_DIR) -> None:
    import music21

    if music21.__version__ != MUSIC21_VERSION:
        print(f"warning: music21 {music21.__version__}, corpus built with {MUSIC21_VERSION}",
              file=sys.stderr)
    if not SOUNDFONT.exists():
        sys.exit(f"{SOUNDFONT} missing: apt-get install fluidsynth fluid-soundfont-gm")

    names = chorale_names()
    by_split: dict[str, list[str]] = {name: [] for name in SPLITS}
    for i, name in enumerate(names):
        by_split[split_of(i)].append(name)

    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / split).glob("*.wav"):
            old.unlink()

    used = 0
    stats = {split: [0, 0.0] for split in SPLITS}  # files, seconds
    failed, no_repeats = [], []
    for split in ("test", "valid", "train"):
        order = sorted(by_split[split], key=lambda n: hashlib.sha1(n.encode()).hexdigest())
        limit = used + HELD_OUT_SHARE * BUDGET_BYTES if split != "train" else BUDGET_BYTES
        misses = 0
        for name in order:
            if not full and misses >= MAX_MISSES:
                break
            midi_path, raw_path = tmp / "in.mid", tmp / "raw.wav"
            raw_path.unlink(missing_ok=True)
            if write_piano_midi(name, midi_path):
                no_repeats.append(name)
            audio = render(midi_path, raw_path)
            if audio is None or audio.size == 0:
                failed.append(name)
                continue
            audio = process(audio)
            out = out_dir / split / f"{stem_of(name)}.wav"
            sf.write(out, audio.astype(np.float32), SAMPLE_RATE, subtype="ULAW")
            size = disk_bytes(out)
            if not full and used + size > limit:
                out.unlink()
                misses += 1
                continue
            misses = 0
            used += size
            stats[split][0] += 1
            stats[split][1] += len(audio) / SAMPLE_RATE

    print(f"{len(names)} chorales; split {', '.join(f'{s} {len(by_split[s])}' for s in SPLITS)}")
    if no_repeats:
        print(f"repeats not expandable, played straight through: {' '.join(no_repeats)}")
    if failed:
        print(f"render failed: {' '.join(failed)}")
    print(f"{'split':<6} {'files':>6} {'minutes':>8}")
    for split in SPLITS:
        files, secs = stats[split]
        print(f"{split:<6} {files:>6} {secs / 60:>8.2f}")
    print(f"WAV total {used / 2**20:.2f} MiB in 4 KiB blocks ({'full' if full else 'budget'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="render every chorale, ignoring the budget")
    parser.add_argument("--out", type=Path, default=OUT_DIR,
                        help="folder for train/ valid/ test/ [default: next to this file, the committed corpus]")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="music21")
    with tempfile.TemporaryDirectory() as tmp:
        build(args.full, Path(tmp), args.out)


if __name__ == "__main__":
    main()
