"""What a training run tells its user: samples at each validation, an overfitting warning, an
end-of-run summary beside baselines, and one clear line for a budget or corpus that cannot work."""

import json
import math
import shlex

import pytest
import soundfile as sf
from PIL import Image

from conftest import LINES, TINY_FRAME, TINY_MODEL
from genseq.errors import GenseqError
from genseq.tasks import train
from genseq.train import TrainConfig, Trainer
from test_cli import run


def config(**kw):
    return TrainConfig(**{**dict(steps=8, batch_size=8, seq_len=32, valid_every=4, seed=0), **kw})


def test_a_text_run_writes_samples_at_each_validation_and_its_summary(tmp_path, corpus_file):
    out = tmp_path / "run"
    result = run("train", "lm", corpus_file, "-o", out, "--steps", 8, "--valid-every", 4, "--hidden", 32,
                 "--embed", 16, "--layers", 1, "--vocab-size", 200, "--batch-size", 8, "--seq-len", 24)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step-000004.txt", "step-000008.txt"]
    lines = (out / "samples" / "step-000008.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(lines)
    assert "step 8 samples:" in result.output and f"  {lines[0]}" in result.output
    assert "bits_per_char" in result.output and "(unigram " in result.output
    quiet = run("train", "lm", corpus_file, "-o", tmp_path / "quiet", "--steps", 4, "--valid-every", 4, "--hidden",
                32, "--embed", 16, "--layers", 1, "--vocab-size", 200, "--batch-size", 8, "--quiet")
    assert quiet.exit_code == 0 and "samples:" not in quiet.output
    assert (tmp_path / "quiet" / "samples" / "step-000004.txt").is_file()  # written all the same


def test_the_unigram_baseline_is_the_training_histograms_cost(tmp_path, corpus_file):
    metrics = train("lm", corpus_file, tmp_path / "run", model_config=TINY_MODEL, codec_options={"vocab_size": 300},
                    progress=False, train_config=config(steps=40, lr=1e-2))
    assert 3 < metrics["summary"]["unigram_bits_per_char"] < 6  # English under a subword unigram
    assert metrics["bits_per_char"] < metrics["summary"]["unigram_bits_per_char"]  # 40 steps learn context


def test_audio_and_image_runs_write_a_wav_and_a_png(tmp_path, audio_folder, sprite_folder):
    train("lm", audio_folder, tmp_path / "audio", model_config=TINY_FRAME, codec_options={"sample_rate": 8000},
          valid=audio_folder, progress=False, train_config=config(steps=2, batch_size=2, seq_len=64, valid_every=2))
    wave, rate = sf.read(tmp_path / "audio" / "samples" / "step-000002.wav")
    assert rate == 8000 and len(wave) == 4000
    metrics = train("lm", sprite_folder, tmp_path / "images", model_config=TINY_FRAME,
                    codec_options={"palette": 3, "size": (8, 8)}, valid_fraction=0.2, progress=False,
                    train_config=config(steps=2, batch_size=4, valid_every=2))
    assert Image.open(tmp_path / "images" / "samples" / "step-000002.png").size == (8 * 34 + 2, 34 + 2)
    assert metrics["summary"]["unigram_nats_per_pixel"] == pytest.approx(
        metrics["summary"]["unigram_bits_per_dim"] * math.log(2))


def test_a_vae_run_shows_a_reconstruction_a_path_and_what_to_try(tmp_path):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    out = tmp_path / "vae"
    result = run("train", "vae", corpus, "-o", out, "--valid", corpus, "--steps", 6, "--valid-every", 3,
                 "--hidden", 24, "--embed", 16, "--latent", 4, "--batch-size", 8, "--refit-steps", 2)
    assert result.exit_code == 0, result.output
    shown = (out / "samples" / "step-000006.txt").read_text(encoding="utf-8").splitlines()
    assert shown[0].startswith(f"step 6: {LINES[0]}  ->  ") and shown[1].startswith(f"  {LINES[0]}  =>  ")
    assert shown[1].endswith(f"=>  {LINES[1]}") and shown[1].count("  |  ") == 2
    assert "recon_char_accuracy" in result.output and "(training items " in result.output
    assert f"try: genseq interpolate {shlex.quote(LINES[0])} {shlex.quote(LINES[1])} -m {out}" in result.output


def test_overfitting_is_named_once_with_best_pt(tmp_path, capsys):
    trainer = Trainer.__new__(Trainer)  # only the bookkeeping of the warning
    trainer.run_dir, trainer.best_step, trainer.curve, trainer.warned_overfitting = tmp_path, 500, [], False
    for valid, train_losses in [(3.0, [3.5]), (2.8, [3.0]), (2.9, [2.6]), (3.1, [2.2]), (3.4, [2.0])]:
        trainer.train_losses = train_losses
        trainer.watch_overfitting(valid)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "held-out loss rose at two validations in a row (2.800 -> 3.100)" in err
    assert f"{tmp_path / 'best.pt'} keeps the best weights so far (step 500)" in err
    trainer.curve, trainer.warned_overfitting = [], False
    for valid, train_losses in [(3.0, [3.5]), (3.1, [3.6]), (3.2, [3.7])]:  # both rise: not overfitting
        trainer.train_losses = train_losses
        trainer.watch_overfitting(valid)
    assert "warning" not in capsys.readouterr().err


def test_a_vae_is_watched_by_its_objective_at_full_weight(tmp_path, capsys):
    """Under free bits the code fills up to its floor, which raises the negative ELBO and is what
    the VAE is trained to do. On the verse lines (the CPU rule, steps 35,000 to 40,000) the
    held-out ELBO rose (126.3 -> 127.3) while the training one fell and held-out reconstruction
    improved (12.7 -> 11.6 nats), and the warning named a best.pt from step 932. The warning
    compares the objective instead (free bits in, KL weight 1; the figures below are made up),
    and for a VAE without free bits its negative ELBO."""
    trainer = Trainer.__new__(Trainer)
    trainer.run_dir, trainer.best_step, trainer.curve, trainer.warned_overfitting = tmp_path, 932, [], False
    rounds = [(141.9, 126.3, 140.0, 135.7), (141.4, 127.3, 139.6, 135.0), (140.7, 127.6, 139.0, 134.4)]
    for objective, valid_elbo, train_objective, train_elbo in rounds:
        trainer.train_losses = []
        trainer.note_training_loss({"loss": 0.5 * train_objective, "objective": train_objective,
                                    "neg_elbo": train_elbo})
        assert trainer.train_losses == [train_objective]
        trainer.watch_overfitting(objective)
    assert "warning" not in capsys.readouterr().err
    for valid, train_objective in [(141.0, 138.0), (142.0, 137.0)]:  # held out rises, training falls
        trainer.train_losses = [train_objective]
        trainer.watch_overfitting(valid)
    assert "held-out loss rose at two validations in a row (140.700 -> 142.000)" in capsys.readouterr().err
    trainer.train_losses = []
    trainer.note_training_loss({"loss": 2.0, "neg_elbo": 3.0})  # no free bits: the ELBO
    trainer.note_training_loss({"loss": 3.0})  # a language model's loss is its own twin
    assert trainer.train_losses == [3.0, 3.0]


def test_a_free_bits_run_hands_the_watch_its_held_out_objective(tmp_path, corpus_file, monkeypatch):
    watched = []
    monkeypatch.setattr(Trainer, "watch_overfitting", lambda self, loss: watched.append(loss))
    out = tmp_path / "vae"
    train("vae", corpus_file, out, model_config=dict(hidden_size=32, embed_dim=16, latent_dim=4, free_bits=1.0),
          codec_options={"vocab_size": 200}, progress=False, train_config=config(), valid=corpus_file, refit_steps=0)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [row for row in rows if row["split"] == "valid"]
    assert len(valid) == 2 and watched == pytest.approx([row["objective"] for row in valid])
    assert all(row["objective"] > row["neg_elbo"] for row in valid)  # 4 dimensions, far below the floor
    assert all("objective" in row for row in rows if row["split"] == "train")


def test_budgets_and_corpora_that_cannot_work_get_one_line(tmp_path, corpus_file):
    with pytest.raises(GenseqError, match=r"--minutes 1e-05 is shorter than one training step, which took "
                                          r"[0-9.]+ s here; give --minutes 1 or more"):
        train("lm", corpus_file, tmp_path / "short", model_config=TINY_MODEL, codec_options={"vocab_size": 300},
              progress=False, train_config=config(steps=None, minutes=1e-5))
    long = tmp_path / "paragraphs.txt"
    long.write_text(" ".join(["word"] * 400) + "\n" + "a short line\n" * 30)
    with pytest.raises(GenseqError, match="a line of the corpus is 40[0-9] tokens long .* more than the 256 a "
                                          "sentence VAE reads; split long lines"):
        train("vae", long, tmp_path / "vae", codec_options={"vocab_size": 30}, progress=False,
              train_config=config(), valid=long)
    one = tmp_path / "one.txt"
    one.write_text("just one line\n")
    result = run("train", "lm", one, "-o", tmp_path / "one")
    assert result.exit_code == 1 and "too few to hold out a validation set" in result.output
