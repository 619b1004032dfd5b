"""Write the few inputs ``genseq demo`` needs into ``genseq/demo_inputs/``, so that the demo runs
from an installed package as well as from a clone: the opening seconds of two speech test clips
and a piano test chorale, and three test sprites. Run from the repository root:

    python corpora/demo_inputs.py
"""

import shutil
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "genseq" / "demo_inputs"
CLIPS = [("audio/speech/test/conf-leaderhasleft.wav", 1.5), ("audio/speech/test/queue-callswaiting.wav", 1.5),
         ("audio/piano/test/bwv287.wav", 3.0)]
SPRITES = ["animals__death_yak.png", "fungi_plants__treant.png", "dragons__storm_dragon.png"]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for clip, seconds in CLIPS:
        source = ROOT / "corpora" / clip
        info = sf.info(source)
        if info.duration < seconds:
            raise SystemExit(f"{clip} is {info.duration:.2f} s long, shorter than the {seconds} s the demo primes with")
        wave, rate = sf.read(source, frames=round(seconds * info.samplerate), dtype="float32")
        sf.write(OUT / f"{source.parent.parent.name}_{source.name}", wave, rate, subtype=info.subtype)
    for name in SPRITES:
        shutil.copy(ROOT / "corpora" / "sprites" / "creatures" / "test" / name, OUT / name)


if __name__ == "__main__":
    main()
