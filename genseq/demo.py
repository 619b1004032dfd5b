"""``genseq demo``: everything genseq does, on the shipped models and corpora, as one page.

Each job below is one call of the :class:`genseq.Model` method behind a CLI command, and the page
shows the exact ``genseq`` command that reproduces it. The page is one HTML file with its pictures
and sounds beside it: no scripts or fonts from elsewhere, so opening it from disk is enough. The
clips and sprites it starts from ship inside the package (``demo_inputs/``), so it runs from an
installed wheel as from a clone.
"""

import html
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genseq.api import load
from genseq.errors import GenseqError
from genseq.media import audio_picture, grid, hide_below, write_png, write_wav
from genseq.store import atomic_path, sampling_flags, shipped_models

INPUTS = Path(__file__).resolve().parent / "demo_inputs"  # written by corpora/demo_inputs.py
POEM_PAIRS = [("床前明月光", "春眠不觉晓"), ("白日依山尽", "处处闻啼鸟")]
VERSE_PAIRS = [("Shall I compare thee to a summer's day", "Now is the winter of our discontent")]
# (model, clip in demo_inputs/ cut from a test clip of its corpus, seconds to continue it); each
# model samples as its file says (bench/audio_quality.py chose it), and the page shows those flags
CLIPS = [("speech", "speech_conf-leaderhasleft.wav", 2.5), ("speech", "speech_queue-callswaiting.wav", 2.5),
         ("piano", "piano_bwv287.wav", 8.0)]
SPRITES = ["animals__death_yak.png", "fungi_plants__treant.png", "dragons__storm_dragon.png"]
SEED = 0


class Page:
    """The sections of the page, filled job by job."""

    def __init__(self):
        self.sections: list[str] = []

    def add(self, title: str, body: str, command: str, note: str = "") -> None:
        note = f"<p>{html.escape(note)}</p>" if note else ""
        self.sections.append(f"<section><h2>{html.escape(title)}</h2>{note}{body}"
                             f"<pre><code>{html.escape(command)}</code></pre></section>")

    def render(self, seconds: float) -> str:
        return PAGE.format(sections="\n".join(self.sections), seconds=f"{seconds:.0f}")


def path_table(path) -> str:
    rows = "".join(f"<tr><td>{t:.2f}</td><td>{html.escape(line)}</td></tr>" for t, line in path)
    return f"<table>{rows}</table>"


def job_interpolations(out: Path, page: Page) -> None:
    for name, pairs in (("poems", POEM_PAIRS), ("verse", VERSE_PAIRS)):
        model = load(name, "cpu")
        for a, b in pairs:
            lines = model.interpolate(a, b, 8)
            path = [(i / (len(lines) - 1), line) for i, line in enumerate(lines)]
            body = path_table([(0.0, f"{a}  (given)")] + path + [(1.0, f"{b}  (given)")])
            page.add(f"Interpolation, {name}: {a} → {b}", body,
                     f'genseq interpolate "{a}" "{b}" -m {name} --steps 8')


def job_audio(out: Path, page: Page) -> None:
    for i, (name, clip, seconds) in enumerate(CLIPS):
        model = load(name, "cpu")
        stem = f"continue_{i}_{name}"
        # the clip written and read back, so that the command below, run in the demo folder, makes
        # the same file
        rate = model.codec.sample_rate
        write_wav(out / f"{stem}_prime.wav", model.read_clip(INPUTS / clip), rate)
        prime = model.read_clip(out / f"{stem}_prime.wav")
        waves, rate = model.continue_(prime, seconds, 1, seed=SEED)
        full = np.concatenate([prime, waves[0]])
        write_wav(out / f"{stem}.wav", full, rate)
        write_png(out / f"{stem}.png", audio_picture(full, rate, len(prime)))
        keep = len(prime) / rate
        flags = sampling_flags(model.record)  # the model's own, said aloud
        body = (f'<p>prime ({keep:.2g} s): <audio controls preload="auto" src="{stem}_prime.wav"></audio> '
                f'prime + continuation: <audio controls preload="auto" src="{stem}.wav"></audio></p>'
                f'<img src="{stem}.png" alt="waveform and spectrogram of {stem}">')
        page.add(f"Continue a {name} clip: the first {keep:.2g} s of {clip.split('_', 1)[1]} "
                 f"(the {name} corpus's test split)", body,
                 f"genseq continue {stem}_prime.wav -m {name} --seconds {seconds:g}{flags} --seed {SEED} -o {stem}.wav",
                 "The red line marks where the clip ends and the model takes over.")


def job_sprites(out: Path, page: Page) -> None:
    model = load("sprites", "cpu")
    images = model.sample(32, temperature=0.9, seed=SEED)
    write_png(out / "sprites.png", grid([np.asarray(image) for image in images]))
    page.add("Sprites drawn pixel by pixel", '<img src="sprites.png" alt="32 sprites">',
             f"genseq sample -m sprites -n 32 --temperature 0.9 --seed {SEED} -o sprites.png")
    for name in SPRITES:
        shutil.copy(INPUTS / name, out / name)  # the file the command below reads in the demo folder
        original = model.as_seen(out / name)
        done = model.complete(original, 0.5, 6, temperature=0.9, seed=SEED)
        stem = f"complete_{Path(name).stem}"
        rows = model.kept_rows(0.5)
        write_png(out / f"{stem}.png", grid([original, hide_below(original, rows), *map(np.asarray, done)],
                                            columns=8))
        page.add(f"Complete a test sprite: {name}", f'<img src="{stem}.png" alt="completions of {name}">',
                 f"genseq complete {name} -m sprites -n 6 --keep 0.5 "
                 f"--temperature 0.9 --seed {SEED} -o {stem}.png",
                 "A sprite of the test split, the top half the model is given, then six bottoms it drew.")


def job_traverse(out: Path, page: Page) -> None:
    if "sprites-vae" not in shipped_models():
        return
    model = load("sprites-vae", "cpu")
    dims = model.busiest_dims()
    images = model.traverse(dims, 9)
    write_png(out / "traverse.png", grid([np.asarray(image) for image in images], columns=9))
    page.add("Sweep two code dimensions of the sprite VAE", '<img src="traverse.png" alt="latent sweep">',
             f"genseq traverse -m sprites-vae --dims {dims[0]},{dims[1]} -o traverse.png",
             f"Every code dimension fixed at 0 but {dims[0]} (down) and {dims[1]} (across), each swept "
             "from -2.5 to 2.5: the lecture's sliders.")
    a, b = SPRITES[0], SPRITES[-1]
    for name in (a, b):
        shutil.copy(INPUTS / name, out / name)
    ends = [model.drawn_size(out / name) for name in (a, b)]
    path = model.interpolate(*ends, 8)
    row = [model.as_seen(ends[0]), *map(np.asarray, path), model.as_seen(ends[1])]
    write_png(out / "interpolation.png", grid(row, columns=10))
    page.add(f"Interpolate between two test sprites: {a} and {b}",
             '<img src="interpolation.png" alt="a row of sprites between two">',
             f"genseq interpolate {a} {b} -m sprites-vae -o interpolation.png",
             "The two sprites at the ends, and eight drawn from evenly spaced points between their codes.")
    prior = model.sample(16, seed=SEED)
    write_png(out / "vae_samples.png", grid(list(map(np.asarray, prior)), columns=8))
    page.add("Draw from the sprite VAE's prior", '<img src="vae_samples.png" alt="sprites from the prior">',
             f"genseq sample -m sprites-vae -n 16 --seed {SEED} -o vae_samples.png",
             "Sixteen codes drawn from N(0, I), each decoded to its likeliest pixels.")


JOBS = [("interpolate poem lines", job_interpolations), ("continue audio clips", job_audio),
        ("draw and complete sprites", job_sprites), ("sweep the sprite VAE", job_traverse)]


def run_demo(out, progress: bool = True) -> Path:
    """Run every job into folder ``out``; return the path of its ``index.html``."""
    out = Path(out)
    if not INPUTS.is_dir():
        raise GenseqError(f"the demo's inputs are missing from {INPUTS}; reinstall genseq")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GenseqError(f"cannot create {out} ({e.strerror}); choose another -o") from None
    page, start = Page(), time.perf_counter()
    with tqdm(JOBS, desc="demo", unit="job", disable=not progress, dynamic_ncols=True) as bar:
        for name, job in bar:
            bar.set_postfix_str(name)
            job(out, page)
    index = out / "index.html"
    with atomic_path(index) as tmp:
        Path(tmp).write_text(page.render(time.perf_counter() - start), encoding="utf-8")
    return index


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genseq demo</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 1060px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ margin-bottom: 0; }} h2 {{ font-size: 1.1em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} td {{ padding: 1px 12px 1px 0; }} td:first-child {{ color: #888; }}
img {{ max-width: 100%; image-rendering: pixelated; }} audio {{ vertical-align: middle; height: 32px; }}
pre {{ background: #f4f4f4; padding: 6px 10px; overflow-x: auto; }}
</style></head>
<body>
<h1>genseq demo</h1>
<p>Text, audio and images as sequences of tokens: every result below comes from a model that
ships with genseq, made on this machine in {seconds} seconds, with the command that makes it
again.</p>
{sections}
<script>
// A self-check the browser test reads: every picture decoded, every sound playable.
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var audios = Array.prototype.slice.call(document.querySelectorAll("audio"));
  var badImages = images.filter(function (i) {{ return !i.complete || i.naturalWidth === 0; }}).length;
  var badAudio = audios.filter(function (a) {{ return !a.canPlayType("audio/wav") || a.error; }}).length;
  document.body.setAttribute("data-check", "images=" + images.length + " bad_images=" + badImages +
      " audio=" + audios.length + " bad_audio=" + badAudio);
}});
</script>
</body></html>
"""
