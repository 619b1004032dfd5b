"""Build a small English speech corpus from Debian's Asterisk core sounds.

Source
    Debian packages ``asterisk-core-sounds-en-g722`` and
    ``asterisk-core-sounds-en``, version 1.6.1-1 (Debian 12 "bookworm"):
    568 telephone prompts read by Allison Smith, as raw G.722 (16 kHz,
    64 kbit/s), and their transcripts (``core-sounds-en.txt``).  Licence
    CC-BY-SA 3.0; see README.md for the attribution.  The script runs
    ``apt-get download PKG=VERSION`` into a temporary directory (or takes
    ``--debs DIR`` holding both .deb files), checks their SHA-256, unpacks
    them with ``dpkg -x`` and decodes every ``.g722`` file with ``ffmpeg``
    (``-f g722``, 16 kHz mono float).  Needs ``apt-get``, ``dpkg``,
    ``ffmpeg`` and the Python packages numpy and soundfile.

What is kept
    Every prompt with a transcript whose text is speech.  Transcript
    annotations in brackets, parentheses or angle brackets ("at [@]", "IAX
    (note: does not say "2")", "<beep ascending>") are removed from the
    text.  A prompt whose text is nothing but annotations is not speech
    (``beep``, ``ascending-2tone``, ``confbridge-join``, ``tt-monkeys``,
    ``silence/1`` ... ``silence/10``) and is dropped, and so is one whose
    annotation says a sound plays after the speech (``vm-intro``, which ends
    in a tone).  Spelling in the transcripts is left as it is
    ("exclaimation-point").  The transcript list also names
    ``pls-try-call-later``, which has no sound file.

Processing
    Decoded audio is normalised to a peak of ``PEAK_DBFS``, then leading and
    trailing 10 ms frames with an RMS below ``TRIM_DBFS`` are cut (keeping
    ``PAD_S`` of margin on each side), and the peak is normalised again.
    Written as mono 16 kHz WAV, 8-bit mu-law (soundfile subtype ``ULAW``).
    File names are the prompt names with ``/`` replaced by ``_``
    (``digits/5`` -> ``digits_5.wav``).

Split
    The kept prompts are sorted by output name; index % 20 == 0 goes to
    test, == 1 to valid, the rest to train.

Budget
    By default (the committed subset) all of test and valid are written,
    then train prompts in the order of the SHA-1 of their names (a fixed,
    well-mixed order) as long as the WAV files, counted in 4 KiB disk blocks
    as ``du`` does, stay within ``BUDGET_BYTES``; a prompt that does not fit
    is skipped.  ``--full`` writes every kept prompt.  Old WAV files in the
    split folders are removed first.

Output (next to this file)
    ``train/ valid/ test/*.wav`` and ``transcripts.tsv`` (UTF-8, header
    ``file<TAB>text``, one row per written file, ``file`` relative to this
    folder, sorted).

Rebuild::

    nice -n 10 python corpora/audio/speech/build.py [--debs DIR] [--full]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # corpora/audio/common.py
from common import BUDGET_BYTES, SAMPLE_RATE, disk_bytes, process, split_of  # noqa: E402

PACKAGES = {  # name: (version, sha256 of the .deb)
    "asterisk-core-sounds-en-g722": (
        "1.6.1-1", "38c5261820b406dcb0ecb37675720da2b0864850690690352ca52707eb623806"),
    "asterisk-core-sounds-en": (
        "1.6.1-1", "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50"),
}
SOUNDS_DIR = "usr/share/asterisk/sounds/en_US_f_Allison"
TRANSCRIPTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
OUT_DIR = Path(__file__).resolve().parent

SPLITS = ("train", "valid", "test")

TRANSCRIPT_RE = re.compile(r"^([\w/-]+):\s*(.*)$")
ANNOTATION_RE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")


# --------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------


def download_debs(dest: Path) -> None:
    """Fetch the pinned package versions into ``dest`` with apt-get."""
    specs = [f"{name}={version}" for name, (version, _) in PACKAGES.items()]
    subprocess.run(["apt-get", "download", *specs], cwd=dest, check=True)


def unpack_debs(deb_dir: Path, root: Path) -> None:
    """Check each pinned .deb in ``deb_dir`` and unpack it into ``root``."""
    for name, (version, sha256) in PACKAGES.items():
        deb = deb_dir / f"{name}_{version}_all.deb"
        if not deb.exists():
            sys.exit(f"missing {deb}")
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest != sha256:
            sys.exit(f"{deb}: sha256 {digest}, expected {sha256}")
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)


# --------------------------------------------------------------------------
# Transcripts
# --------------------------------------------------------------------------


def read_transcripts(path: Path) -> dict[str, str]:
    """``prompt name -> raw transcript`` from core-sounds-en.txt(.gz)."""
    out = {}
    for line in gzip.open(path, "rt", encoding="utf-8"):
        match = TRANSCRIPT_RE.match(line.rstrip("\n"))
        if match and not line.startswith(";"):
            out[match.group(1)] = match.group(2)
    return out


def speech_text(raw: str) -> str | None:
    """Transcript text without annotations, or None if the prompt is not speech."""
    annotations = ANNOTATION_RE.findall(raw)
    if any("sound" in note.lower() for note in annotations):
        return None  # speech followed by a tone or other sound
    text = " ".join(ANNOTATION_RE.sub(" ", raw).split())
    return text or None


# --------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------


def decode_g722(path: Path) -> np.ndarray:
    """Decode a raw G.722 file to float32 mono at 16 kHz with ffmpeg."""
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-threads", "1",
        "-f", "g722", "-i", str(path),
        "-ar", str(SAMPLE_RATE), "-ac", "1", "-f", "f32le", "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<f4").astype(np.float64)










# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------




def build(root: Path, full: bool) -> None:
    sounds = root / SOUNDS_DIR
    transcripts = read_transcripts(root / TRANSCRIPTS)
    prompts = {}  # output stem -> (g722 path, text)
    dropped = []
    for path in sorted(sounds.rglob("*.g722")):
        name = path.relative_to(sounds).with_suffix("").as_posix()
        text = speech_text(transcripts[name]) if name in transcripts else None
        if text is None:
            dropped.append(name)
            continue
        stem = name.replace("/", "_")
        if stem in prompts:
            sys.exit(f"two prompts map to {stem}")
        prompts[stem] = (path, text)

    stems = sorted(prompts)
    split = {stem: split_of(i) for i, stem in enumerate(stems)}
    # Write order: test and valid in full, then train in SHA-1 order.
    train = sorted((s for s in stems if split[s] == "train"),
                   key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    order = [s for s in stems if split[s] == "test"] + \
            [s for s in stems if split[s] == "valid"] + train

    for name in SPLITS:
        (OUT_DIR / name).mkdir(exist_ok=True)
        for old in (OUT_DIR / name).glob("*.wav"):
            old.unlink()

    used = 0
    rows = []
    seconds = {name: [0, 0.0, 0] for name in SPLITS}  # files, seconds, skipped
    for stem in order:
        path, text = prompts[stem]
        audio = process(decode_g722(path))
        out = OUT_DIR / split[stem] / f"{stem}.wav"
        sf.write(out, audio.astype(np.float32), SAMPLE_RATE, subtype="ULAW")
        size = disk_bytes(out)
        if not full and split[stem] == "train" and used + size > BUDGET_BYTES:
            out.unlink()
            seconds["train"][2] += 1
            continue
        used += size
        rows.append((f"{split[stem]}/{stem}.wav", text))
        seconds[split[stem]][0] += 1
        seconds[split[stem]][1] += len(audio) / SAMPLE_RATE

    with open(OUT_DIR / "transcripts.tsv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("file\ttext\n")
        fh.writelines(f"{f}\t{t}\n" for f, t in sorted(rows))

    print(f"{len(prompts)} speech prompts kept, {len(dropped)} dropped: {' '.join(dropped)}")
    print(f"{'split':<6} {'files':>6} {'minutes':>8} {'not written':>12}")
    for name in SPLITS:
        files, secs, skipped = seconds[name]
        print(f"{name:<6} {files:>6} {secs / 60:>8.2f} {skipped:>12}")
    print(f"WAV total {used / 2**20:.2f} MiB in 4 KiB blocks ({'full' if full else 'budget'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debs", type=Path, help="folder holding both pinned .deb files")
    parser.add_argument("--full", action="store_true", help="write every prompt, ignoring the budget")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        deb_dir = args.debs or Path(tmp)
        if not args.debs:
            download_debs(deb_dir)
        root = Path(tmp) / "root"
        unpack_debs(deb_dir, root)
        build(root, args.full)


if __name__ == "__main__":
    main()
