"""genseq as a library: genseq.load, the Model's jobs, genseq.train, and the README's Python."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import genseq
from conftest import TINY_FRAME, sprite, tone
from genseq.demo import INPUTS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_load_takes_a_run_folder_a_file_or_a_shipped_name(tiny_run):
    by_folder, by_file = genseq.load(tiny_run, "cpu"), genseq.load(tiny_run / "model.pt", "cpu")
    assert by_folder.path == by_file.path == tiny_run / "model.pt"
    assert (by_folder.task, by_folder.kind) == ("lm", "text")
    assert "poems" in genseq.models() and genseq.load("poems", "cpu").task == "vae"
    with pytest.raises(genseq.GenseqError, match="no model file, run folder or shipped model named 'nope'"):
        genseq.load("nope")


def test_text_jobs_return_lines(tiny_run, tiny_vae_run):
    lm = genseq.load(tiny_run, "cpu")
    lines = lm.sample(3, prompt="The", max_tokens=12, seed=1)
    assert len(lines) == 3 and all(line.startswith("The") for line in lines)
    assert lm.sample(3, prompt="The", max_tokens=12, seed=1) == lines  # the seed reproduces
    vae = genseq.load(tiny_vae_run, "cpu")
    path = vae.interpolate("床前明月光", "春眠不觉晓", steps=5)
    assert len(path) == 5 and all(isinstance(line, str) for line in path)
    assert vae.reconstruct("床前明月光") == vae.reconstruct(["床前明月光"])
    assert len(vae.sample(4, seed=0)) == 4


def test_a_job_that_does_not_fit_the_model_raises_the_cli_line(tiny_run, tiny_vae_run, tiny_audio_run):
    with pytest.raises(genseq.GenseqError, match="is a language model; this command needs a VAE"):
        genseq.load(tiny_run).interpolate("a", "b")
    with pytest.raises(genseq.GenseqError, match="is a VAE; genseq continue needs an autoregressive audio model"):
        genseq.load(tiny_vae_run).continue_(np.ones(100))
    with pytest.raises(genseq.GenseqError, match="needs an autoregressive image model"):
        genseq.load(tiny_audio_run).complete(sprite(1))
    with pytest.raises(genseq.GenseqError, match="a VAE samples whole lines from its prior"):
        genseq.load(tiny_vae_run).sample(2, prompt="床")


def test_continue_takes_a_path_or_an_array_at_any_rate(tiny_audio_run, tmp_path):
    model = genseq.load(tiny_audio_run, "cpu")
    rate = model.codec.sample_rate
    clip = tone(0.25, 22050, 330, 0)
    sf.write(tmp_path / "clip.wav", clip, 22050)
    waves, out_rate = model.continue_(tmp_path / "clip.wav", seconds=0.05, n=2, seed=3)
    assert out_rate == rate and waves.shape == (2, round(0.05 * rate)) and waves.dtype == np.float32
    from_array, _ = model.continue_(sf.read(tmp_path / "clip.wav", dtype="float32")[0], seconds=0.05, n=2,
                                    seed=3, rate=22050)
    np.testing.assert_array_equal(from_array, waves)  # the array is read as the file is
    with pytest.raises(genseq.GenseqError, match="is silent"):
        model.continue_(np.zeros(4000), seconds=0.05)
    sampled, _ = model.sample(seconds=0.05, seed=1)
    assert sampled.shape == (1, round(0.05 * rate))


def test_a_truncated_wav_is_said_to_be(tiny_audio_run, tmp_path):
    """A cut download: the header promises 1 s, the file holds the first half of it."""
    model = genseq.load(tiny_audio_run, "cpu")
    sf.write(tmp_path / "whole.wav", tone(1.0, 8000, 220, 0), 8000, subtype="PCM_16")
    data = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:44 + 8000])  # the 44-byte header and 0.5 s of samples
    notes = []
    waves, _ = model.continue_(tmp_path / "cut.wav", seconds=0.01, seed=0, warn=notes.append)
    assert notes == [f"note: {tmp_path / 'cut.wav'} is truncated: its header promises 1.00 s, the file holds "
                     "0.50 s; continuing the 0.50 s read"]
    model.continue_(tmp_path / "whole.wav", seconds=0.01, seed=0, warn=notes.append)
    assert len(notes) == 1


def test_image_jobs_return_pil_images(tiny_image_run, sprite_folder):
    model = genseq.load(tiny_image_run, "cpu")
    drawn = model.sample(3, seed=0)
    assert len(drawn) == 3 and all(isinstance(image, Image.Image) and image.size == (8, 8) for image in drawn)
    given = Image.open(sprite_folder / "s02.png")
    done = model.complete(given, keep=0.5, n=2, seed=0)
    kept = np.asarray(model.as_seen(given))[:model.kept_rows(0.5)]
    assert all(np.array_equal(np.asarray(image)[:len(kept)], kept) for image in done)


def test_train_is_what_the_cli_trains(tmp_path, sprite_folder):
    metrics = genseq.train("lm", sprite_folder, tmp_path / "run", steps=4, batch_size=4, valid_every=2,
                           palette=3, size=(8, 8), progress=False, device="cpu", **TINY_FRAME)
    assert metrics["items"] == 1  # 5% of 24 images
    assert metrics["nats_per_pixel"] == pytest.approx(metrics["nll_nats_per_item"] / 64)
    model = genseq.load(tmp_path / "run", "cpu")
    assert model.model.config.frame_hidden == TINY_FRAME["hidden_size"]
    assert model.record["step"] == 4
    with pytest.raises(genseq.GenseqError, match="give --steps or --minutes, not both"):
        genseq.train("lm", sprite_folder, tmp_path / "other", steps=4, minutes=1)


def python_section() -> str:
    """The code of the README's "From Python" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_runs(tmp_path, monkeypatch, verse_lines):
    """The section's code, run as written in a folder holding the files it names; only its
    training budget of minutes becomes a few steps here."""
    code = python_section()
    assert "minutes=3" in code
    monkeypatch.chdir(tmp_path)
    shutil.copy(INPUTS / "speech_conf-leaderhasleft.wav", "clip.wav")
    shutil.copy(INPUTS / "animals__death_yak.png", "sprite.png")
    Path("my.txt").write_text("\n".join(verse_lines[:300]) + "\n", encoding="utf-8")
    scope = {}
    exec(compile(code.replace("minutes=3", "steps=3, hidden_size=32, embed_dim=16"), "README.md", "exec"), scope)
    assert isinstance(scope["poems"], genseq.Model)
    assert (tmp_path / "runs" / "mine" / "model.pt").is_file()
