"""The audio and image commands end to end on tiny models: continue, sample, complete, eval."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from conftest import sprite
import genseq
from genseq.store import load_model
from test_cli import run


def test_continue_writes_prime_plus_continuation_and_a_picture(tmp_path, tiny_audio_run, audio_folder):
    clip = audio_folder / "clip1.wav"  # 22.05 kHz stereo: resampled and mixed down on the way in
    out = tmp_path / "out.wav"
    result = run("continue", clip, "-m", tiny_audio_run, "--seconds", 0.25, "-o", out, "--seed", 1)
    assert result.exit_code == 0, result.output
    wave, rate = sf.read(out)
    assert rate == 8000 and len(wave) == round(0.5 * 8000) + 2000
    assert Image.open(out.with_suffix(".png")).size[0] == 1000
    again = tmp_path / "again.wav"
    run("continue", clip, "-m", tiny_audio_run, "--seconds", 0.25, "-o", again, "--seed", 1)
    assert np.array_equal(sf.read(again)[0], wave)  # a seed reproduces a take


def test_several_takes_and_no_prime(tmp_path, tiny_audio_run, audio_folder):
    out = tmp_path / "takes"
    result = run("continue", audio_folder / "clip0.flac", "-m", tiny_audio_run, "--seconds", 0.1,
                 "-n", 3, "--no-prime", "-o", out, "--seed", 0)
    assert result.exit_code == 0, result.output
    takes = [sf.read(out / f"take_0{i}.wav")[0] for i in (1, 2, 3)]
    assert all(len(t) == 800 for t in takes) and not np.array_equal(takes[0], takes[1])


def test_sample_and_eval_audio(tmp_path, tiny_audio_run, audio_folder):
    out = tmp_path / "babble.wav"
    assert run("sample", "-m", tiny_audio_run, "--seconds", 0.2, "-o", out).exit_code == 0
    assert len(sf.read(out)[0]) == 1600
    result = run("eval", audio_folder, "-m", tiny_audio_run, "--json")
    metrics = json.loads(result.output)
    assert 0 < metrics["bits_per_sample"] < 8 and metrics["audio_seconds"] == 3.0


def test_sample_grid_complete_and_eval_images(tmp_path, tiny_image_run, sprite_folder):
    grid = tmp_path / "grid.png"
    result = run("sample", "-m", tiny_image_run, "-n", 6, "-o", grid, "--seed", 0)
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (3 * (32 + 2) + 2, 2 * (32 + 2) + 2)  # 8x8 sprites at 4x
    out = tmp_path / "completions.png"
    result = run("complete", sprite_folder / "s03.png", "-m", tiny_image_run, "-n", 4, "--keep", 0.5, "-o", out)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size[0] == 6 * (32 + 2) + 2  # original, kept, four completions
    metrics = json.loads(run("eval", sprite_folder, "-m", tiny_image_run, "--json").output)
    assert metrics["items"] == 24 and metrics["nats_per_pixel"] == pytest.approx(metrics["bits_per_dim"] * math.log(2))
    assert metrics["nats_per_pixel"] == pytest.approx(metrics["nll_nats_per_item"] / 64)


def test_completion_keeps_the_given_pixels_exactly(tiny_image_run):
    model = genseq.load(str(tiny_image_run), "cpu")
    image = model.as_seen(sprite(5))
    done = [np.asarray(completion) for completion in model.complete(image, 0.5, 5, seed=0)]
    rows = model.kept_rows(0.5)
    assert rows == 4
    for completion in done:
        assert np.array_equal(completion[:rows], image[:rows])
    assert any(not np.array_equal(done[0][rows:], other[rows:]) for other in done[1:])


def test_bad_media_input_gets_one_clear_line(tmp_path, tiny_audio_run, tiny_image_run, tiny_run, audio_folder):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(4000), 8000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes((audio_folder / "clip1.wav").read_bytes()[:40])
    notes = tmp_path / "notes.wav"
    notes.write_text("hello")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("words\n")
    sf.write(mixed / "b.wav", np.zeros(100), 8000)
    clip = audio_folder / "clip1.wav"
    cases = [
        (["continue", silent, "-m", tiny_audio_run], "is silent"),
        (["continue", broken, "-m", tiny_audio_run], "not an audio file"),
        (["continue", notes, "-m", tiny_audio_run], "not an audio file"),
        (["continue", clip, "-m", tiny_audio_run, "--seconds", 0], "0.0 is not in the range 0<x<=600"),
        (["continue", clip, "-m", tiny_audio_run, "--seconds", 1e9], "not in the range 0<x<=600"),
        (["continue", clip, "-m", tiny_run], "needs an autoregressive audio model"),
        (["complete", clip, "-m", tiny_audio_run], "needs an autoregressive image model"),
        (["complete", notes, "-m", tiny_image_run], "not an image"),
        (["complete", clip, "-m", tiny_image_run, "--keep", 0], "not in the range 0<x<1"),
        (["complete", clip, "-m", tiny_image_run, "--keep", 1], "not in the range 0<x<1"),
        (["train", "lm", mixed, "-o", tmp_path / "r"], "mixes kinds of files"),
        (["eval", audio_folder, "-m", tiny_image_run], "holds audio but the model is an image model"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "continued.wav").exists() and not (tmp_path / "r").exists()


def test_image_vae_trains_samples_and_traverses(tmp_path, sprite_folder):
    run_dir = tmp_path / "vae"
    result = run("train", "vae", sprite_folder, "-o", run_dir, "--steps", 6, "--valid-every", 3, "--batch-size", 4,
                 "--hidden", 16, "--embed", 8, "--latent", 4, "--palette", 3, "--size", "8x8", "--quiet")
    assert result.exit_code == 0, result.output
    assert "recon_pixel_accuracy" in result.output
    sweep = tmp_path / "sweep.png"
    result = run("traverse", "-m", run_dir, "--dims", "0,3", "--steps", 3, "-o", sweep)
    assert result.exit_code == 0, result.output
    assert Image.open(sweep).size == (3 * 34 + 2, 3 * 34 + 2)
    assert run("traverse", "-m", run_dir, "--from", sprite_folder / "s01.png", "-o", sweep).exit_code == 0
    metrics = json.loads(run("eval", sprite_folder, "-m", run_dir, "--json", "--iw-samples", 2).output)
    assert metrics["lines"] == 24
    assert metrics["bits_per_dim"] == pytest.approx(metrics["iw_nll"] / 64 / math.log(2))  # per pixel of 8 x 8
    assert len(metrics["unit_variances"]) == 4
    samples = tmp_path / "prior.png"
    assert run("sample", "-m", run_dir, "-n", 4, "--seed", 1, "-o", samples).exit_code == 0
    assert Image.open(samples).size == (2 * 34 + 2, 2 * 34 + 2)
    drawn = [np.asarray(image) for image in genseq.load(run_dir, "cpu").sample(4, seed=1)]
    assert all(image.shape == (8, 8, 4) for image in drawn)
    for args, message in [(["traverse", "-m", run_dir, "--dims", "0,9"], "two different dimensions from 0 to 3"),
                          (["traverse", "-m", run_dir, "--dims", "x"], "--dims takes two dimensions"),
                          (["interpolate", "a", "b", "-m", run_dir], "a does not exist; give a PNG")]:
        result = run(*args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)


@pytest.mark.parametrize("kind", ["audio", "image"])
def test_plain_rnn_baseline_trains_on_audio_and_images(tmp_path, audio_folder, sprite_folder, kind):
    """--arch rnn: the sample-level (or raster) RNN over the same codec, scored in the same units."""
    corpus, unit, extra = (audio_folder, "bits_per_sample", ["--sample-rate", 8000, "--seq-len", 64]) if kind == "audio" \
        else (sprite_folder, "bits_per_dim", ["--palette", 3, "--size", "8x8"])
    run_dir = tmp_path / "rnn"
    result = run("train", "lm", corpus, "-o", run_dir, "--arch", "rnn", "--steps", 4, "--valid-every", 2,
                 "--batch-size", 4, "--hidden", 16, "--embed", 8, "--layers", 1, "--quiet", *extra)
    assert result.exit_code == 0, result.output
    model = genseq.load(run_dir, "cpu")
    assert model.record["family"] == "rnn" and model.kind == kind
    valid = model.record["valid"]
    units = valid["audio_seconds"] * 8000 if kind == "audio" else valid["items"] * 64
    assert valid[unit] * units == pytest.approx(valid["nll_nats_per_token"] * valid["tokens"] / math.log(2), rel=1e-4)
    assert run("sample", "-m", run_dir, "-n", 2, "--seconds", 0.01, "-o", tmp_path / "out" / ("x.wav" if kind == "audio" else "x.png")).exit_code == 0


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, corpus_file, tiny_audio_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run("train", "lm", corpus_file, "-o", blocker / "run", "--steps", 2)
    assert result.exit_code == 1 and "cannot create the run folder" in result.output
    result = run("sample", "-m", tiny_audio_run, "--seconds", 0.1, "-o", blocker / "out.wav")
    assert result.exit_code == 1 and "cannot write" in result.output
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("takes, whole_group", [(1, False), (2, True)])
def test_ctrl_c_during_generation_stops_cleanly_and_writes_nothing(tmp_path, tiny_audio_run, audio_folder, takes,
                                                                    whole_group):
    """SIGINT to the process (kill -INT), and a terminal's Ctrl-C, which reaches the whole process
    group, forked sampling workers too. The child starts with SIGINT at its default, as from a
    terminal: a shell without job control starts background commands with SIGINT ignored, which
    every child inherits (why this test once hung under CI), and then there is no Ctrl-C to test.
    The signal goes once sampling has begun, not after a fixed sleep."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    out = tmp_path / "long.wav"
    process = subprocess.Popen([sys.executable, "-m", "genseq", "continue", str(audio_folder / "clip1.wav"), "-m",
                                str(tiny_audio_run), "--seconds", "600", "-n", str(takes), "-o", str(out)],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: process.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while "sample/s]" not in "".join(err) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the bar shows a rate once sampling runs
    assert process.poll() is None, "".join(err)
    time.sleep(0.5)
    if whole_group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    reader.join(timeout=10)
    err = "".join(err)
    assert process.returncode == 1 and "Aborted!" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".long*"))
    assert not list(tmp_path.glob("long/*"))  # several takes go to a folder, made up front: left empty


def test_an_audio_models_frame_length(tmp_path, audio_folder, sprite_folder, corpus_file):
    run_dir = tmp_path / "frame8"
    result = run("train", "lm", audio_folder, "-o", run_dir, "--valid", audio_folder, "--steps", 2,
                 "--valid-every", 2, "--batch-size", 2, "--seq-len", 64, "--hidden", 16, "--embed", 4,
                 "--token-hidden", 8, "--frame", 8, "--sample-rate", 8000, "--quiet")
    assert result.exit_code == 0, result.output
    assert load_model(str(run_dir)).model.config.frame == 8
    result = run("sample", "-m", run_dir, "--seconds", 0.05, "-o", tmp_path / "s.wav")
    assert result.exit_code == 0, result.output
    assert len(sf.read(tmp_path / "s.wav")[0]) == 400
    for corpus, args, message in [(sprite_folder, ["--frame", 4], "an image model's frame is one row"),
                                  (corpus_file, ["--token-hidden", 8], "which this run does not train"),
                                  (audio_folder, ["--arch", "rnn", "--frame", 4], "which this run does not train"),
                                  (corpus_file, ["--arch", "frame"], "the frame model is for audio and images")]:
        result = run("train", "lm", corpus, "-o", tmp_path / "r", *args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "r").exists()


def test_a_model_samples_as_its_file_says_unless_told(tmp_path, tiny_audio_run):
    """genseq export --temperature/--top-k/--top-p stores how the model samples (over what it
    already stores); continue and sample use it unless a flag says otherwise."""
    exported, both = tmp_path / "k2.pt", tmp_path / "k2t.pt"
    assert run("export", tiny_audio_run, exported, "--top-k", 2, "--precision", "float32").exit_code == 0
    assert run("export", exported, both, "--temperature", 0.5, "--precision", "float32").exit_code == 0
    assert genseq.load(tiny_audio_run, "cpu").sampling() == {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": None}
    assert genseq.load(exported, "cpu").sampling()["top_k"] == 2
    assert genseq.load(both, "cpu").sampling(top_p=0.5, seed=1) == {"temperature": 0.5, "top_k": 2, "top_p": 0.5,
                                                                     "seed": 1}
    listed = {row["name"]: row for row in map(json.loads, run("models", "--json").output.splitlines())}
    assert listed["piano"]["sampling"] == genseq.load("piano", "cpu").record.get("sampling", {})
    assert listed["piano"]["sampling"] == {"temperature": 0.9} and listed["speech"]["sampling"] == {}
    assert "piano" in run("models").output.split("samples at --temperature 0.9")[0].splitlines()[-1]
    clip = tmp_path / "clip.wav"
    sf.write(clip, (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32), 8000)
    takes = {}
    for name, model, flags in [("own", both, []), ("said", both, ["--top-k", 2, "--temperature", 0.5]),
                               ("said elsewhere", tiny_audio_run, ["--top-k", 2, "--temperature", 0.5]),
                               ("all", both, ["--top-k", 0, "--temperature", 1])]:
        out = tmp_path / f"{name}.wav"
        result = run("continue", clip, "-m", model, "--seconds", 0.2, "--seed", 3, "--no-prime", "-o", out, *flags)
        assert result.exit_code == 0, result.output
        takes[name] = sf.read(out)[0]
    assert np.array_equal(takes["own"], takes["said"]) and np.array_equal(takes["own"], takes["said elsewhere"])
    assert not np.array_equal(takes["own"], takes["all"])
    assert "the model's own" in run("continue", "--help").output


def test_a_pre_emphasised_audio_model(tmp_path, audio_folder, corpus_file, tiny_audio_run):
    """--preemphasis trains on the filtered signal and stores the filter; a continuation picks up
    where its clip ends (the inverse filter starts from the clip's last sample, not from 0);
    --init with --preemphasis fine-tunes a plain model into it; text has none to give."""
    run_dir = tmp_path / "pe"
    result = run("train", "lm", audio_folder, "-o", run_dir, "--valid", audio_folder, "--steps", 2,
                 "--valid-every", 2, "--batch-size", 2, "--seq-len", 64, "--hidden", 16, "--embed", 4,
                 "--token-hidden", 8, "--frame", 8, "--sample-rate", 8000, "--preemphasis", 0.85, "--quiet")
    assert result.exit_code == 0, result.output
    assert load_model(str(run_dir)).codec.preemphasis == 0.85
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.full(800, 0.5, np.float32), 8000)  # a held level: de-emphasis from 0 would drop by 0.5
    out = tmp_path / "c.wav"
    result = run("continue", clip, "-m", run_dir, "--seconds", 0.01, "--seed", 0, "--no-prime", "-o", out,
                 "--temperature", 0.01)
    assert result.exit_code == 0, result.output
    assert abs(sf.read(out)[0][0] - 0.5) < 0.2
    tuned = tmp_path / "tuned"
    result = run("train", "lm", audio_folder, "-o", tuned, "--valid", audio_folder, "--steps", 1, "--quiet",
                 "--init", tiny_audio_run, "--preemphasis", 0.5, "--batch-size", 2, "--seq-len", 64)
    assert result.exit_code == 0, result.output
    assert load_model(str(tuned)).codec.preemphasis == 0.5 and load_model(str(tiny_audio_run)).codec.preemphasis == 0
    result = run("train", "lm", corpus_file, "-o", tmp_path / "text", "--preemphasis", 0.85)
    assert result.exit_code == 1 and "--preemphasis filters audio" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "text").exists()
