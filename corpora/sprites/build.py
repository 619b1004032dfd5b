"""Build a 32x32 creature-sprite corpus from the monster tiles of Dungeon Crawl Stone Soup.

Source
    The Debian source package ``crawl`` 2:0.28.0-1.1 (bookworm).  Its upstream
    tarball ``crawl_0.28.0.orig.tar.xz`` (unmodified DCSS 0.28.0, top folder
    ``stone_soup-0.28.0/``) holds the game's tiles as single PNGs under
    ``source/rltiles/``.  The script runs ``apt-get source --download-only
    crawl=2:0.28.0-1.1`` in a temporary folder (needs a ``deb-src`` entry in
    the apt sources and ``apt-get update``; see README.md), or takes
    ``--orig PATH``, checks the tarball's SHA-256 against the value in the
    package's .dsc, and reads only ``source/rltiles/mon/**.png`` and the
    licence files straight out of the tarball.  Needs Pillow.

    (On our mirror the small ``crawl_0.28.0-1.1.debian.tar.xz`` answers 404, so
    ``apt-get source`` exits non-zero after fetching the .dsc and the orig
    tarball; only the orig tarball is needed, so that failure is tolerated.)

Licence (see README.md for the exact lines)
    DCSS's top-level ``LICENSE`` says "Public Domain|CC0: most of tiles" and
    "The majority of Crawl's tiles and artwork are released under the CC0
    license ... new submissions are under this license unless otherwise
    specified.  However, the licensing situation may be complex, especially
    for older pieces.  For information regarding the licenses of our tiles
    and artwork, see https://github.com/crawl/tiles".  ``source/rltiles/
    license.txt`` says the tiles derive from the public-domain RLTiles set.
    The tarball has NO per-tile licence list.  The only per-tile list is the
    exclusion list of the upstream tiles project, crawl/tiles
    ``TILES_UNDER_UNKNOWN_LICENSE.md`` ("The following tiles (as of 2010) had
    unclear ownership and/or the original author was unable to be reached.
    They will be excluded from any release."), copied into
    ``UNKNOWN_LICENSE`` below; every monster tile whose file name is on it is
    dropped.  Everything else is kept on the strength of the blanket CC0
    statement.  The script refuses a tarball whose licence texts differ.

What is kept
    Every ``source/rltiles/mon/**/*.png`` except:

    * ``tentacles/``: kraken/eldritch/vine/starspawn tentacle segments,
      corners and ends (pieces, not creatures);
    * parts the game layers onto a base tile (see ``rltiles/dc-mon.txt``,
      ``dc-demon.txt``): ``panlord/demon_{body,head,wings}_*`` (pandemonium
      lord parts; ``pandemonium_lord.png`` itself is kept),
      ``mutantbeast/*`` facets other than the ``base*`` bodies,
      ``draco/draco-job-*`` job overlays (the ``draco-base-*`` draconians are
      kept), ``statues/overlay_*`` weapon overlays and the empty
      ``statue_base``/``*_vine_statue_base`` pedestals;
    * tiles on the upstream unknown-licence list (above);
    * images larger than 32x32 (the 32x48 / 32x46 tall monsters: uniques,
      hydras, Tiamat, ...); smaller ones (31x32) are centred on a transparent
      32x32 canvas, padding to the right/bottom first when the gap is odd;
    * exact pixel duplicates of an earlier (sorted) kept tile.

Pixels
    As the game's own tile compiler does (``rltiles/tool/tile.cc``): palette
    transparency becomes alpha, images without alpha get alpha 255, and the
    old RLTiles key colour (71, 108, 108) becomes transparent.  Fully
    transparent pixels are then set to (0, 0, 0, 0) so they carry no hidden
    colour.  Output is 8-bit RGBA PNG, no metadata.

Names and split
    ``mon/humanoids/elves/deep_elf_mage.png`` becomes
    ``humanoids__elves__deep_elf_mage.png`` (unique, since paths are).  Kept
    tiles are sorted by that name; index % 20 == 0 goes to test, == 1 to
    valid, the rest to train (5% / 5% / 90%).  Variants of one monster
    (e.g. ``zombie_*``, hydra heads) may land in different splits.

Output (next to this file)
    ``creatures/{train,valid,test}/<name>.png`` (rebuilt from scratch) and
    ``licences/`` (DCSS ``LICENSE``, ``rltiles-license.txt``, ``cc0.txt``,
    copied verbatim from the tarball).

Rebuild::

    python corpora/sprites/build.py [--orig PATH/crawl_0.28.0.orig.tar.xz]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

SOURCE_PACKAGE = "crawl=2:0.28.0-1.1"
ORIG_NAME = "crawl_0.28.0.orig.tar.xz"
ORIG_SHA256 = "5a6be168f8888b84bdb199184ca20bd8636f77ba7e9e0124ebee8850092f2f47"
TOP = "stone_soup-0.28.0/"
MON_PREFIX = TOP + "source/rltiles/mon/"
LICENCE_FILES = {  # path in tarball -> name under licences/
    TOP + "LICENSE": "LICENSE",
    TOP + "source/rltiles/license.txt": "rltiles-license.txt",
    TOP + "docs/license/cc0.txt": "cc0.txt",
}
# Statements the corpus relies on; the build stops if one is missing.
LICENCE_CHECKS = {
    "LICENSE": [
        "* Public Domain|CC0: most of tiles, perlin.cc, perlin.h",
        "The majority of Crawl's tiles and artwork are released under the CC0 license",
    ],
    "rltiles-license.txt": ['public\ndomain roguelike tileset "RLTiles"'],
    "cc0.txt": ["CC0 1.0 Universal"],
}

OUT_DIR = Path(__file__).resolve().parent
SPRITE_DIR = OUT_DIR / "creatures"
LICENCE_DIR = OUT_DIR / "licences"
SPLITS = ("train", "valid", "test")
SIZE = 32
KEY_COLOUR = (71, 108, 108)  # RLTiles background, transparent in the game

# Upstream crawl/tiles TILES_UNDER_UNKNOWN_LICENSE.md (commit 46d42fb3ba2b),
# verbatim file names; most are items/features and never match a monster.
UNKNOWN_LICENSE = frozenset("""
active_ballistomycete arrow1 arrow2 ballistomycete berserk bush bush_burning
crossbow_bolt1 crossbow_bolt2 dart-p dart1 dart2 demonblade dngn_altar_fedhas
dngn_altar_fedhas2 dowan duvessa flaming_corpse fungus gravestone_blank
gravestone_ornate gravestone_writing1 gravestone_writing2 i-agility
i-brilliance i-silence i-sleep stealth ice_cave_portal indicator_1 indicator_2
indicator_3 indicator_4 indicator_5 indicator_6 indicator_7 indicator_8
javelin1 javelin2 kenku khufu mold_small1 mold_small2 mold_small3 mold_small4
needle-p needle1 needle2 nikola pikel reaping-2 reaping-3 rune_snake
sewer_portal silver_arrow1 silver_arrow2 silver_crossbow_bolt1
silver_crossbow_bolt2 silver_dart1 silver_dart2 silver_javelin1
silver_javelin2 silver_sling_bullet1 silver_sling_bullet2 slave
slime_creature slime_creature2 slime_creature3 slime_creature4
slime_creature5 steel_arrow1 steel_arrow2 steel_crossbow_bolt1
steel_crossbow_bolt2 steel_dart1 steel_dart2 steel_javelin1 steel_javelin2
steel_sling_bullet1 steel_sling_bullet2 silver_sling_bullet_runed0
silver_sling_bullet0 sling_bullet_runed0 steel_sling_bullet_runed0
steel_sling_bullet0 toadstool_left toadstool_right transparent_flesh1
transparent_flesh2 transparent_flesh3 transparent_flesh4 transparent_flesh5
transparent_flesh6 tree1 tree1_dead tree2 tree2_dead vine-covered_golem
volcano_portal wizlab_portal0 wizlab_portal1 wizlab_portal2 wizlab_portal3
wizlab_portal4 wizlab_portal5 wizlab_portal6 wizlab_portal7 wizlab_portal8
zombie_bat zombie_bee zombie_bug zombie_centaur zombie_dragon zombie_fish
zombie_hydra1 zombie_hydra2 zombie_hydra3 zombie_hydra4 zombie_hydra5
zombie_large zombie_naga zombie_quadruped_large zombie_quadruped_small
zombie_small zombie_snake zombie_spider zombie_worm
""".split())

# Pieces that the game composites into a creature, not creatures themselves
# (path relative to rltiles/mon/, without ".png").
PART_RE = re.compile(
    r"^(tentacles/"
    r"|panlord/demon_(body|head|wings)_"
    r"|statues/overlay_"
    r"|mutantbeast/(?!base)"
    r"|draco/draco-job-"
    r"|statues/(\w+_)?statue_base$)"
)


# --------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------


def download_orig(dest: Path) -> Path:
    """Fetch the source package into ``dest`` with apt-get; return the orig tarball."""
    cmd = ["apt-get", "source", "--download-only", SOURCE_PACKAGE]
    result = subprocess.run(cmd, cwd=dest)
    orig = dest / ORIG_NAME
    if not orig.exists():
        sys.exit(
            f"apt-get source gave no {ORIG_NAME} (exit {result.returncode}); "
            "is there a deb-src entry and has apt-get update run?"
        )
    if result.returncode:  # the Debian tarball may be missing; we do not need it
        print(f"note: apt-get exited {result.returncode}, but {ORIG_NAME} is there", file=sys.stderr)
    return orig


def check_orig(orig: Path) -> None:
    """Refuse a tarball that is not the one this corpus was built from."""
    digest = hashlib.sha256(orig.read_bytes()).hexdigest()
    if digest != ORIG_SHA256:
        sys.exit(f"{orig}: sha256 {digest}, expected {ORIG_SHA256}")


def read_tarball(orig: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Return ``({mon-relative path: png bytes}, {licence name: bytes})``."""
    tiles: dict[str, bytes] = {}
    licences: dict[str, bytes] = {}
    with tarfile.open(orig, "r:xz") as tar:
        for member in tar:  # one streaming pass
            if not member.isfile():
                continue
            if member.name in LICENCE_FILES:
                licences[LICENCE_FILES[member.name]] = tar.extractfile(member).read()
            elif member.name.startswith(MON_PREFIX) and member.name.endswith(".png"):
                tiles[member.name[len(MON_PREFIX):]] = tar.extractfile(member).read()
    missing = set(LICENCE_FILES.values()) - set(licences)
    if missing:
        sys.exit(f"licence files missing from tarball: {sorted(missing)}")
    return tiles, licences


def check_licences(licences: dict[str, bytes]) -> None:
    for name, needles in LICENCE_CHECKS.items():
        text = licences[name].decode("utf-8")
        for needle in needles:
            if needle not in text:
                sys.exit(f"{name}: expected licence statement not found: {needle!r}")


# --------------------------------------------------------------------------
# Selection and pixels
# --------------------------------------------------------------------------


def drop_reason(rel: str) -> str | None:
    """Why the tile at ``rel`` (relative to mon/) is not a kept creature, or None."""
    stem = rel[: -len(".png")]
    if PART_RE.match(stem):
        return "tentacle piece" if stem.startswith("tentacles/") else "composited part"
    if stem.rsplit("/", 1)[-1] in UNKNOWN_LICENSE:
        return "unknown licence (crawl/tiles list)"
    return None


def to_rgba(data: bytes) -> Image.Image:
    """Decode a tile the way the game's tile compiler does, as RGBA."""
    im = Image.open(io.BytesIO(data))
    im.load()
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # palette tRNS -> alpha
    im = im.convert("RGBA")
    raw = bytearray(im.tobytes())
    for i in range(0, len(raw), 4):
        if raw[i + 3] == 0 or tuple(raw[i:i + 3]) == KEY_COLOUR:
            raw[i:i + 4] = b"\0\0\0\0"
    return Image.frombytes("RGBA", im.size, bytes(raw))


def fit(im: Image.Image) -> Image.Image | None:
    """Centre a tile no larger than 32x32 on a transparent 32x32 canvas; None if larger."""
    w, h = im.size
    if w > SIZE or h > SIZE:
        return None
    if (w, h) == (SIZE, SIZE):
        return im
    canvas = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    canvas.paste(im, ((SIZE - w) // 2, (SIZE - h) // 2))
    return canvas


def out_name(rel: str) -> str:
    return rel.replace("/", "__")


def split_of(index: int) -> str:
    """Fixed assignment by position in the sorted list of kept tiles."""
    return "test" if index % 20 == 0 else "valid" if index % 20 == 1 else "train"


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------


def build(orig: Path) -> None:
    check_orig(orig)
    tiles, licences = read_tarball(orig)
    check_licences(licences)

    dropped: Counter[str] = Counter()
    dropped_names: dict[str, list[str]] = {}
    kept: list[tuple[str, Image.Image]] = []
    padded: list[str] = []
    seen: dict[bytes, str] = {}
    for rel in sorted(tiles, key=out_name):
        reason = drop_reason(rel)
        if reason is None:
            im = to_rgba(tiles[rel])
            fitted = fit(im)
            if fitted is None:
                reason = f"larger than {SIZE}x{SIZE}"
            else:
                if fitted is not im:
                    padded.append(f"{rel} ({im.size[0]}x{im.size[1]})")
                key = fitted.tobytes()
                if key in seen:
                    reason = "duplicate"
                    rel = f"{rel} (= {seen[key]})"
                else:
                    seen[key] = rel
                    kept.append((out_name(rel), fitted))
        if reason is not None:
            dropped[reason] += 1
            if reason not in ("tentacle piece", f"larger than {SIZE}x{SIZE}"):
                dropped_names.setdefault(reason, []).append(rel)

    if SPRITE_DIR.exists():
        shutil.rmtree(SPRITE_DIR)
    counts: Counter[str] = Counter()
    for index, (name, im) in enumerate(kept):
        split = split_of(index)
        path = SPRITE_DIR / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, format="PNG", optimize=True)
        counts[split] += 1

    LICENCE_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in licences.items():
        (LICENCE_DIR / name).write_bytes(data)

    no_alpha = [name for name, im in kept if im.getextrema()[3][0] == 255]
    print(f"monster tiles in tarball: {len(tiles)}")
    for reason, n in sorted(dropped.items()):
        print(f"dropped, {reason}: {n}")
        for rel in dropped_names.get(reason, []):
            print(f"    {rel}")
    print(f"padded to {SIZE}x{SIZE}: {len(padded)}")
    for rel in padded:
        print(f"    {rel}")
    print(f"kept without any transparent pixel: {len(no_alpha)} {no_alpha}")
    print("kept: " + ", ".join(f"{s} {counts[s]}" for s in SPLITS) + f", total {len(kept)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orig", type=Path, help=f"local {ORIG_NAME} (else fetched with apt-get source)")
    args = parser.parse_args()
    if args.orig:
        build(args.orig)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(download_orig(Path(tmp)))


if __name__ == "__main__":
    main()
