#!/usr/bin/env python3
"""Build the Tang-poem line corpus (simplified Chinese) for the sentence VAE.

Source
    npm package ``chinese-poetry`` (MIT; the poems themselves are public
    domain), pinned to version 2.0.1 and checked against its npm integrity
    hash.  The Tang poems are ``package/dist/quantangshi/poet.tang.<N>.json``
    (58 files, 57,607 poems, traditional characters).  The sibling
    ``quantangshi/error/`` folder (poems flagged with errors) is not used.

Requirements (build time only)
    * ``npm`` on PATH (only to fetch the tarball; not needed with --tarball)
    * the PyPI package ``OpenCC`` 1.4.2 (``pip install OpenCC==1.4.2``), which
      ships its dictionaries in the wheel and converts offline.  Other versions
      are accepted with a warning, since their output may differ slightly.

Rules, in order
    1. The JSON files are read straight from the tarball, in numeric order of
       <N>; poems and paragraphs in file order.  Entries that are editors'
       prose, not poems (titles 前言, 自序, 後記, 敦煌唐人詩集殘卷考釋), are skipped.
    2. Editorial annotations are removed: anything inside （…） / (…) and
       〖…〗, tracked across the paragraphs of a poem (variant readings such as
       "逸（乙作「遶」）勢如飛翔" become "逸勢如飛翔").  Numeric footnote marks
       like [二一] are removed; other square brackets mark characters supplied
       by the editors, so [ ] / ［ ］ are dropped and their content kept.
       Paragraphs that still contain book-title marks 《》〈〉 are skipped
       (they are nearly always notes).
    3. Each paragraph is NFC-normalised and split on sentence punctuation
       ，。！？；：、 and their ASCII / fullwidth / halfwidth forms.  A piece is
       kept if it is exactly 5 or exactly 7 CJK ideographs (Unicode "CJK
       UNIFIED/COMPATIBILITY IDEOGRAPH").  Any other character (□ for lost
       characters, ○, quotes 「」, {…} glyph descriptions, private-use
       characters, digits, ...) drops the whole piece rather than splitting
       it, so no fragment of a longer line is ever kept.
    4. Each kept piece is converted with OpenCC ``t2s`` (traditional ->
       simplified), checked again, and deduplicated after conversion, keeping
       first-occurrence order.
    5. The unique lines are shuffled with random.Random(SEED) and split into
       test (2,000), valid (2,000) and train (the rest), up to 80,000 5-char
       and 60,000 7-char lines in all (all lines if fewer exist).
    6. FAMOUS_LINES (5-char) are always put in train, whether or not they are
       in the source: 床前明月光, 疑是地上霜, 举头望明月, 低头思故乡, 春眠不觉晓,
       处处闻啼鸟, 夜来风雨声, 花落知多少, 白日依山尽, 黄河入海流, 欲穷千里目,
       更上一层楼.  (全唐诗 has 床前看月光 / 举头望山月; the popular text
       of 静夜思 comes from later editions, so those two lines are not in
       the source and are added here.)  They count toward the 80,000 and are
       never in valid or test.

Output (UTF-8, one line per line, trailing newline)
    wuyan/{train,valid,test}.txt   5-character lines
    qiyan/{train,valid,test}.txt   7-character lines

Usage
    python corpora/poems/build.py                 # npm pack into a temp dir
    python corpora/poems/build.py --tarball chinese-poetry-2.0.1.tgz
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from importlib import metadata
from pathlib import Path

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
# `npm view chinese-poetry@2.0.1 dist.integrity`
INTEGRITY = ("sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7PWyDzXI4KsCEm2odZcqEQyval5koaLygZnM/"
             "EQ3lfJ//25K8p3uHNg==")
OPENCC_VERSION = "1.4.2"

SEED = 20240601
N_TOTAL = {5: 80_000, 7: 60_000}
N_TEST = 2_000
N_VALID = 2_000
OUT_DIRS = {5: "wuyan", 7: "qiyan"}

FAMOUS_LINES = [
    "床前明月光", "疑是地上霜", "举头望明月", "低头思故乡",
    "春眠不觉晓", "处处闻啼鸟", "夜来风雨声", "花落知多少",
    "白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼",
]

TANG_FILE = re.compile(r"^package/dist/quantangshi/poet\.tang\.(\d+)\.json$")
SKIP_TITLES = {"前言", "自序", "後記", "敦煌唐人詩集殘卷考釋"}

ANNOTATION_OPEN = "（(〖"
ANNOTATION_CLOSE = "）)〗"
FOOTNOTE_MARK = re.compile(r"[\[［][一二三四五六七八九十百〇○0-9]+[\]］]")
EDITOR_BRACKETS = re.compile(r"[\[\]［］]")
BOOK_TITLE_MARKS = re.compile(r"[《》〈〉]")
# Chinese punctuation plus ASCII, fullwidth and halfwidth forms.
SPLIT = re.compile(r"[，。！？；：、,.!?;:．｡､]")


def fetch_tarball(dest: Path) -> Path:
    """Run `npm pack` for the pinned version in `dest`; return the .tgz path."""
    result = subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{VERSION}", "--json"],
        cwd=dest, check=True, capture_output=True, text=True,
    )
    return dest / json.loads(result.stdout)[0]["filename"]


def check_integrity(path: Path) -> None:
    digest = hashlib.sha512(path.read_bytes()).digest()
    got = "sha512-" + base64.b64encode(digest).decode()
    if got != INTEGRITY:
        sys.exit(f"{path}: integrity mismatch\n  expected {INTEGRITY}\n  got      {got}")


def read_tang_poems(path: Path) -> list[dict]:
    """All Tang poems from the tarball, files in numeric order."""
    files = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:  # one sequential pass over the gzip stream
            match = TANG_FILE.match(member.name)
            if match and member.isfile():
                files[int(match.group(1))] = tar.extractfile(member).read()
    if not files:
        sys.exit(f"{path}: no {TANG_FILE.pattern} files found")
    poems = []
    for number in sorted(files):
        poems.extend(json.loads(files[number]))
    print(f"read {len(files)} files, {len(poems)} poems")
    return poems


def strip_annotations(paragraphs: list[str]) -> list[str]:
    """Remove （…）/(…)/〖…〗 content; nesting is tracked across paragraphs."""
    depth = 0
    cleaned = []
    for paragraph in paragraphs:
        kept = []
        for ch in paragraph:
            if ch in ANNOTATION_OPEN:
                depth += 1
            elif ch in ANNOTATION_CLOSE:
                depth = max(0, depth - 1)
            elif depth == 0:
                kept.append(ch)
        cleaned.append("".join(kept))
    return cleaned


def is_ideograph(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def is_line(text: str, length: int) -> bool:
    return len(text) == length and all(is_ideograph(ch) for ch in text)


def candidate_lines(poems: list[dict]):
    """Yield traditional-character 5- and 7-char pieces in source order."""
    for poem in poems:
        if poem.get("title", "").strip() in SKIP_TITLES:
            continue
        for paragraph in strip_annotations(poem.get("paragraphs", [])):
            paragraph = FOOTNOTE_MARK.sub("", paragraph)
            paragraph = EDITOR_BRACKETS.sub("", paragraph)
            if BOOK_TITLE_MARKS.search(paragraph):
                continue
            paragraph = unicodedata.normalize("NFC", paragraph)
            for piece in SPLIT.split(paragraph):
                piece = piece.strip()
                if is_line(piece, 5) or is_line(piece, 7):
                    yield piece


def make_converter():
    try:
        import opencc
    except ImportError:
        sys.exit(f"needs OpenCC: pip install OpenCC=={OPENCC_VERSION}")
    version = metadata.version("OpenCC")
    if version != OPENCC_VERSION:
        print(f"warning: OpenCC {version} installed, corpus was built with {OPENCC_VERSION}")
    print(f"OpenCC {version}, config t2s")
    return opencc.OpenCC("t2s").convert


def unique_simplified(poems: list[dict]) -> dict[int, list[str]]:
    convert = make_converter()
    seen: dict[int, dict[str, None]] = {5: {}, 7: {}}
    for piece in candidate_lines(poems):
        simple = convert(piece)
        if is_line(simple, len(piece)):
            seen[len(piece)].setdefault(simple, None)
    return {n: list(lines) for n, lines in seen.items()}


def split_lines(lines: list[str], n_total: int, forced: list[str]):
    """Seeded subset -> (train, valid, test); `forced` lines go to train."""
    forced = list(dict.fromkeys(forced))
    forced_set = set(forced)
    rest = [line for line in lines if line not in forced_set]
    rng = random.Random(SEED)
    rng.shuffle(rest)
    n_total = min(n_total, len(rest) + len(forced))
    test = rest[:N_TEST]
    valid = rest[N_TEST:N_TEST + N_VALID]
    train = rest[N_TEST + N_VALID:n_total - len(forced)] + forced
    rng.shuffle(train)
    return train, valid, test


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path,
                        help=f"local {PACKAGE}-{VERSION}.tgz instead of running npm pack")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent,
                        help="where wuyan/ and qiyan/ are written (default: next to this script)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(Path(tmp))
        check_integrity(tarball)
        poems = read_tang_poems(tarball)

    unique = unique_simplified(poems)
    print(f"unique 5-char lines: {len(unique[5])}")
    print(f"unique 7-char lines: {len(unique[7])}")

    found = set(unique[5])
    missing = [line for line in FAMOUS_LINES if line not in found]
    if missing:
        print(f"famous lines not in the source (added to train): {' '.join(missing)}")

    for length, name in OUT_DIRS.items():
        forced = FAMOUS_LINES if length == 5 else []
        train, valid, test = split_lines(unique[length], N_TOTAL[length], forced)
        for split, lines in (("train", train), ("valid", valid), ("test", test)):
            path = args.out_dir / name / f"{split}.txt"
            write_lines(path, lines)
            print(f"{name}/{split}.txt: {len(lines)} lines")


if __name__ == "__main__":
    main()
