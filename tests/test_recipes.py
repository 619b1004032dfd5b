import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_models_recipe_quick_mode():
    """The recipe that makes the shipped models runs end to end on tiny budgets."""
    result = subprocess.run(["bash", "recipes/models/run.sh", "--quick", "shakespeare", "poems", "piano"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    reports = dict(line.split(": ", 1) for line in result.stdout.splitlines()
                   if line.startswith(("shakespeare:", "poems:", "piano:")))
    lm, vae = json.loads(reports["shakespeare"]), json.loads(reports["poems"])
    assert lm["tokens"] > 1000 and lm["bits_per_char"] < lm["bits_per_token"]
    for key in ("iw_nll", "kl", "mutual_info", "active_units", "recon_char_accuracy", "perplexity"):
        assert key in vae
    assert vae["lines"] == 50
    piano = json.loads(reports["piano"])  # the windows' model, fine-tuned in lanes that carry the state
    assert piano["model"].endswith("piano/best.pt") and piano["audio_seconds"] > 60


def test_sprites_recipe_quick_mode():
    """Corpus, palette, training, held-out score, sample grid and completions, end to end."""
    result = subprocess.run(["bash", "recipes/sprites/run.sh", "--quick"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    score = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert score["items"] == 39 and 0 < score["nats_per_pixel"] < 5
    assert "wrote" in result.stderr and "completions.png" in result.stderr


def test_sprites_recipe_lecture_quick_mode(tmp_path):
    """The lecture benchmark's branch on made-up data in the lecture's format (its own data is
    never shipped): the first 712 images train, the rest are scored."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (6, 3))
    images = rng.integers(0, 6, (720, 36))  # 720 images of 6 x 6 pixels
    (tmp_path / "pixel_color.txt").write_text("\n".join(" ".join(map(str, row)) for row in images) + "\n")
    (tmp_path / "colormap.txt").write_text("\n".join(" ".join(map(str, c)) for c in palette) + "\n")
    result = subprocess.run(["bash", "recipes/sprites/run.sh", "--lecture", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "LECTURE": str(tmp_path),
                                 "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    lm, vae = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lm["items"] == 8 and 0 < lm["nats_per_pixel"] < 5
    assert vae["lines"] == 8 and vae["latent_dim"] == 10 and 0 <= vae["recon_pixel_accuracy"] <= 1
    assert vae["nats_per_pixel"] > 0  # IW-NLL in the LM's unit, to put beside it
