import json
import math
import os

import pytest
import torch

from genseq.data import StreamLanes, TokenWindows, split_holdout
from genseq.errors import GenseqError
from genseq.tasks import train
from genseq.store import read_file, save_atomic
from genseq.train import TrainConfig, learning_rate

from conftest import TINY_FRAME, TINY_MODEL


def config(**kw):
    return TrainConfig(**{**dict(steps=24, batch_size=8, seq_len=32, valid_every=8, seed=1), **kw})


def test_holdout_is_deterministic_and_disjoint():
    items = [f"line {i}" for i in range(1000)]
    train, valid = split_holdout(items, 0.05, seed=3)
    assert (train, valid) == split_holdout(items, 0.05, seed=3)
    assert len({tuple(split_holdout(items, 0.05, seed=s)[1]) for s in range(6)}) > 1
    assert sorted(train + valid) == sorted(items)
    assert 30 <= len(valid) <= 70


def test_batches_depend_only_on_seed_and_step():
    stream = torch.arange(1000, dtype=torch.int32)
    a, b = TokenWindows(stream, 16, 4, seed=0), TokenWindows(stream, 16, 4, seed=0)
    assert torch.equal(a.batch(5), b.batch(5))
    assert not torch.equal(a.batch(5), a.batch(6))
    window = a.batch(0)[0]
    assert torch.equal(window, torch.arange(window[0], window[0] + 17))


def test_lanes_read_consecutive_windows_and_start_anew_together():
    """--carry's lanes: each step's windows continue the last step's by one id of overlap, for
    ``carry`` steps; then every lane starts elsewhere, and a step's batch depends on nothing else."""
    stream = torch.arange(100_000, dtype=torch.int32)
    lanes = StreamLanes(stream, 16, 4, seed=0, carry=3)
    assert [lanes.fresh(s) for s in range(7)] == [True, False, False, True, False, False, True]
    first, second, third = lanes.batch(0), lanes.batch(1), lanes.batch(2)
    assert first.shape == (4, 18) and second.shape == third.shape == (4, 17)
    joined = torch.cat([first, second[:, 1:], third[:, 1:]], 1)  # inputs and targets of a lane, whole
    assert torch.equal(joined, joined[:, :1] + torch.arange(3 * 16 + 2))
    assert torch.equal(second, StreamLanes(stream, 16, 4, seed=0, carry=3).batch(1))
    assert not torch.equal(lanes.batch(3)[:, 0], first[:, 0])
    with pytest.raises(GenseqError, match="--carry 400 windows of 16 tokens need 6,402 tokens"):
        StreamLanes(stream[:5000], 16, 4, seed=0, carry=400)


@pytest.mark.parametrize("family", ["frame", "rnn"])
def test_carried_windows_score_what_one_long_window_scores(family):
    """A lane's windows, each continuing the state the last one left, give the NLL of the lane read
    in one call: what the model learns from is the long context it will sample in (audio) or be
    scored in (text, whose held-out stream is read in lanes that carry the state)."""
    from genseq.models import FrameLM, RNNLM
    from genseq.models.frame import FrameConfig
    from genseq.models.rnn import RNNConfig
    torch.manual_seed(0)
    model = (FrameLM(FrameConfig(vocab_size=256, frame=4, frame_hidden=32, embed_dim=8, token_hidden=16,
                                 head_hidden=32)) if family == "frame"
             else RNNLM(RNNConfig(vocab_size=256, hidden_size=24, embed_dim=8, num_layers=2))).eval()
    lanes = StreamLanes(torch.randint(256, (5000,), dtype=torch.int32), 16, 3, seed=0, carry=4)
    total, state = 0.0, None
    for step in range(4):
        out = model.loss(lanes.batch(step), carry=True, state=state)
        state, total = out["state"], total + out["loss"].item() * (17 if step == 0 else 16)
    joined = torch.cat([lanes.batch(0)] + [lanes.batch(s)[:, 1:] for s in range(1, 4)], 1)
    assert total / (4 * 16 + 1) == pytest.approx(model.loss(joined)["loss"].item(), rel=1e-5)
    if family == "frame":
        assert state.position == 4 * 16 + 1 and not state.frame_h.requires_grad
    else:
        assert state.shape == (2, 3, 24) and not state.requires_grad


def test_schedule_warms_up_then_decays():
    c = TrainConfig(lr=1.0, warmup_steps=10)
    lrs = [learning_rate(c, s, 100) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1.0)
    assert lrs[50] < lrs[10] and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_training_lowers_validation_loss(tmp_path, corpus_file):
    run = tmp_path / "run"
    train("lm", corpus_file, run, model_config=TINY_MODEL, codec_options={"vocab_size": 300}, progress=False,
             train_config=config(steps=40, lr=1e-2))
    valid = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if '"valid"' in line]
    assert valid[-1]["loss"] < valid[0]["loss"] - 0.5
    record = read_file(run / "model.pt")
    assert record["valid"]["bits_per_char"] == pytest.approx(valid[-1]["bits_per_char"])


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_continues_exactly(tmp_path, corpus_file, ema):
    kw = dict(model_config={**TINY_MODEL, "dropout": 0.2}, codec_options={"vocab_size": 300}, progress=False)
    train("lm", corpus_file, tmp_path / "whole", train_config=config(ema=ema), **kw)
    train("lm", corpus_file, tmp_path / "split", train_config=config(ema=ema), stop_at=11, **kw)
    assert read_file(tmp_path / "split" / "checkpoint.pt")["step"] == 11
    train("lm", corpus_file, tmp_path / "split", train_config=config(ema=ema), resume=True, **kw)
    whole = read_file(tmp_path / "whole" / "model.pt")
    split = read_file(tmp_path / "split" / "model.pt")
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    assert whole["valid"] == split["valid"]


@pytest.mark.parametrize("kind", ["audio", "text"])
def test_resume_with_carried_state_continues_exactly(tmp_path, audio_folder, corpus_file, kind):
    """Stopped between a lane's windows, a --carry run keeps the carried state in its checkpoint
    and resumes to the uninterrupted run's weights."""
    if kind == "audio":
        kw = dict(model_config=TINY_FRAME, codec_options={"sample_rate": 8000}, valid=audio_folder)
        corpus = audio_folder
    else:
        kw = dict(model_config={**TINY_MODEL, "num_layers": 2}, codec_options={"vocab_size": 300})
        corpus = corpus_file
    cfg = TrainConfig(steps=10, batch_size=4, seq_len=64, valid_every=5, seed=0, carry=4)
    train("lm", corpus, tmp_path / "whole", train_config=cfg, progress=False, **kw)
    train("lm", corpus, tmp_path / "split", train_config=cfg, stop_at=6, progress=False, **kw)
    carried = read_file(tmp_path / "split" / "checkpoint.pt")["carried"]
    if kind == "audio":
        assert carried["position"] == 64 + 64 + 1
    else:
        assert carried["state"].shape == (2, 4, TINY_MODEL["hidden_size"])
    train("lm", corpus, tmp_path / "split", train_config=cfg, resume=True, progress=False, **kw)
    whole, split = read_file(tmp_path / "whole" / "model.pt"), read_file(tmp_path / "split" / "model.pt")
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, split["model"][name]), name


def test_carry_is_refused_where_windows_do_not_continue(tmp_path, audio_folder, sprite_folder):
    with pytest.raises(GenseqError, match="--carry is for language models of text or audio"):
        train("lm", sprite_folder, tmp_path / "images", model_config=TINY_FRAME, progress=False,
              codec_options={"palette": 3, "size": (8, 8)}, train_config=config(carry=2))
    with pytest.raises(GenseqError, match="--seq-len of whole frames: 60 is not a multiple of --frame 16"):
        train("lm", audio_folder, tmp_path / "audio", model_config={**TINY_FRAME, "frame": 16},
              codec_options={"sample_rate": 8000}, progress=False,
              train_config=TrainConfig(steps=2, batch_size=4, seq_len=60, carry=2))


def test_ema_writes_and_scores_the_averaged_weights(tmp_path, corpus_file):
    """Under --ema, model.pt holds the moving average (not the last weights, which the checkpoint
    keeps for resuming), and the logged validation scores it."""
    from genseq.codecs import read_corpus
    from genseq.store import load_model
    from genseq.tasks import lm_metrics
    lines = corpus_file.read_text().splitlines()
    corpus, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    corpus.write_text("\n".join(lines[40:]) + "\n")
    valid.write_text("\n".join(lines[:40]) + "\n")
    run = tmp_path / "run"
    train("lm", corpus, run, train_config=config(ema=0.9, lr=1e-2), valid=valid, model_config=TINY_MODEL,
          codec_options={"vocab_size": 300}, progress=False)
    model, checkpoint = read_file(run / "model.pt"), read_file(run / "checkpoint.pt")
    differ = [name for name, t in model["model"].items() if not torch.equal(t, checkpoint["model"][name])]
    assert differ and all(torch.equal(checkpoint["ema"][name], model["model"][name]) for name in differ)
    loaded = load_model(str(run))
    rescored = lm_metrics(loaded.model.eval(), loaded.codec, read_corpus(valid, "text"))
    assert rescored["loss"] == pytest.approx(model["valid"]["loss"], rel=1e-5)


def test_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_atomic({"weights": torch.ones(3)}, path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(GenseqError, match=r"cannot write .*model.pt \(disk full\); the previous model.pt is kept whole"):
        save_atomic({"weights": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_a_full_disk_while_training_is_one_line_and_keeps_the_last_checkpoint(tmp_path, corpus_file, monkeypatch):
    """torch reports a short write as ``RuntimeError: ... unexpected pos``: the run ends with one
    line naming the file and the full disk, and the checkpoint written before it survives."""
    run = tmp_path / "run"
    saves, real_save = [], torch.save

    def save(obj, f, *args, **kwargs):
        saves.append(obj.get("step"))
        if len(saves) > 3:  # the first validation's checkpoint, model and best files are written
            raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed "
                               "writing file data/3: file write failed. unexpected pos 64 vs 0")
        return real_save(obj, f, *args, **kwargs)
    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(GenseqError, match=r"cannot write .*checkpoint.pt \(the disk is full\); the previous "
                                          r"checkpoint.pt is kept whole.*--resume"):
        train("lm", corpus_file, run, model_config=TINY_MODEL, codec_options={"vocab_size": 300}, progress=False,
              train_config=config(steps=16, valid_every=8))
    assert read_file(run / "checkpoint.pt")["step"] == 8
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_checkpoints_are_written_by_the_clock_between_validations(tmp_path, corpus_file, monkeypatch):
    """A kill long after the last validation loses at most --checkpoint-minutes of work."""
    from genseq.train import Trainer

    steps, real_save = [], Trainer.save

    def save(self):
        steps.append(self.step)
        real_save(self)
    monkeypatch.setattr(Trainer, "save", save)
    train("lm", corpus_file, tmp_path / "run", model_config=TINY_MODEL, codec_options={"vocab_size": 300},
          progress=False, train_config=config(steps=6, valid_every=100, checkpoint_minutes=1e-9))
    assert steps == [1, 2, 3, 4, 5, 6]
    assert read_file(tmp_path / "run" / "checkpoint.pt")["step"] == 6


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, corpus_file):
    import os
    import signal
    import subprocess
    import sys
    import time

    from genseq.store import read_file

    run = tmp_path / "run"
    args = [sys.executable, "-m", "genseq", "train", "lm", str(corpus_file), "-o", str(run), "--steps", "100000",
            "--valid-every", "5", "--hidden", "16", "--embed", "8", "--layers", "1", "--vocab-size", "200",
            "--batch-size", "4", "--seq-len", "16", "--quiet"]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    assert read_file(run / "checkpoint.pt")["step"] == step >= 5


def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(tmp_path, corpus_file):
    """A run killed with SIGKILL mid-training resumes from its last checkpoint and ends with the
    same weights and held-out scores as a run never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(run, *extra):
        return [sys.executable, "-m", "genseq", "train", "lm", str(corpus_file), "-o", str(run), "--steps", "200",
                "--valid-every", "10", "--hidden", "24", "--embed", "8", "--layers", "1", "--dropout", "0.2",
                "--vocab-size", "200", "--batch-size", "4", "--seq-len", "16", "--quiet", "--device", "cpu", *extra]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command(tmp_path / "whole"), check=True, capture_output=True, env=env, timeout=300)
    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (killed / "checkpoint.pt").exists() and read_file(killed / "checkpoint.pt")["step"] >= 20:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    step = read_file(killed / "checkpoint.pt")["step"]
    assert 20 <= step < 200  # killed part way, with no chance to save anything more
    subprocess.run(command(killed, "--resume"), check=True, capture_output=True, env=env, timeout=300)
    whole, resumed = read_file(tmp_path / "whole" / "model.pt"), read_file(killed / "model.pt")
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert whole["valid"] == resumed["valid"]


def test_keep_checkpoints_keeps_the_last_n(tmp_path, corpus_file):
    run = tmp_path / "run"
    train("lm", corpus_file, run, model_config=TINY_MODEL, codec_options={"vocab_size": 300}, progress=False,
          train_config=config(steps=12, valid_every=3, keep_checkpoints=2))
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000009.pt", "step-00000012.pt"]
    assert read_file(run / "checkpoints" / kept[0])["step"] == 9


def test_bf16_mixed_precision_trains_on_the_cpu(tmp_path, corpus_file):
    run = tmp_path / "run"
    metrics = train("lm", corpus_file, run, model_config=TINY_MODEL, codec_options={"vocab_size": 300},
                    progress=False, train_config=config(steps=8, valid_every=4, precision="bf16"))
    assert math.isfinite(metrics["loss"])
    weights = read_file(run / "model.pt")["model"]
    assert all(t.dtype == torch.float32 for t in weights.values())  # weights stay fp32
    assert weights["head.weight"].abs().sum() > 0


@pytest.mark.parametrize("task, options", [("lm", TINY_MODEL),
                                           ("vae", dict(hidden_size=16, embed_dim=8, latent_dim=4, cell="lstm"))])
def test_compile_compiles_what_the_loop_calls(tmp_path, corpus_file, monkeypatch, task, options):
    """--compile reaches every model's loss (a VAE has no forward to compile): the function the
    trainer calls each step is torch.compile's. The compiler itself is stood in for here."""
    calls = []

    def compile(function):
        def compiled(*args, **kwargs):
            calls.append(function.__name__)
            return function(*args, **kwargs)
        return compiled
    monkeypatch.setattr(torch, "compile", compile)
    train(task, corpus_file, tmp_path / "run", model_config=options, codec_options={"vocab_size": 300},
          progress=False, train_config=config(steps=4, valid_every=4, compile=True), refit_steps=0)
    assert calls == ["loss"] * 4
    if task == "vae":
        assert read_file(tmp_path / "run" / "model.pt")["config"]["cell"] == "lstm"


def test_weight_decay_spares_biases_and_embeddings():
    from genseq.models import RNNConfig, RNNLM
    from genseq.train import parameter_groups

    model = RNNLM(RNNConfig(vocab_size=50, embed_dim=8, hidden_size=16, num_layers=1))
    decay, plain = parameter_groups(model, 0.1)
    names = {id(p): name for name, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {names[id(p)] for p in decay["params"]} == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight"}
    assert {names[id(p)] for p in plain["params"]} == {"embed.weight", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.bias"}


def test_fp16_without_cuda_is_refused_before_any_work(tmp_path, corpus_file):
    from genseq.errors import GenseqError

    with pytest.raises(GenseqError, match="fp16 needs a CUDA GPU"):
        train("lm", corpus_file, tmp_path / "run", progress=False, train_config=config(precision="fp16"))
    assert not (tmp_path / "run").exists()
