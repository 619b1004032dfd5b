"""The settings a run chooses for what its user left unset: by corpus, device and task; flags win."""

from pathlib import Path


import pytest
import torch

from genseq import sizing
from genseq.codecs.text import read_text_corpus
from genseq.data import split_holdout
from genseq.device import native_bf16
from genseq.sizing import CPU_AUDIO_LM, CPU_TEXT_LM, CPU_TEXT_VAE, SMALL_TEXT_CORPUS, SMALL_TEXT_LM, choose
from genseq.store import read_file
from test_cli import run

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_a_cpu_gets_smaller_models_and_a_gpu_keeps_the_shipped_sizes(monkeypatch):
    monkeypatch.setattr(sizing, "native_bf16", lambda device: False)
    settings, reason = choose("lm", "audio", 200, CPU, {})
    assert settings == CPU_AUDIO_LM
    assert reason.startswith("chose --hidden 256 --frame 32 --batch-size 16 --seq-len 1024 for 200 training clips on the CPU")
    assert choose("lm", "audio", 200, CUDA, {}) == ({}, "")
    assert choose("lm", "text", 50_000, CPU, {}) == ({}, "")  # measured: the shipped size wins there too
    assert choose("vae", "text", 3_000, CPU, {})[0] == CPU_TEXT_VAE
    assert choose("vae", "text", 3_000, CUDA, {}) == ({}, "")
    assert choose("lm", "audio", 200, CPU, {})[0] == {"hidden_size": 256, "frame": 32, "batch_size": 16, "seq_len": 1024}


def test_a_text_lm_trains_in_bf16_on_a_cpu_that_computes_it_natively(monkeypatch):
    monkeypatch.setattr(sizing, "native_bf16", lambda device: device.type == "cpu")
    settings, reason = choose("lm", "text", 50_000, CPU, {})
    assert settings == CPU_TEXT_LM == {"precision": "bf16", "lr": 2e-3}
    assert reason.startswith("chose --precision bf16 --lr 0.002 for 50,000 training lines on the CPU")
    assert choose("lm", "text", 50_000, CPU, {"lr": 1e-3})[0] == {"precision": "bf16"}
    assert choose("lm", "text", 50_000, CPU, {"precision": "float32"}) == ({}, "")  # the rate is bf16's
    assert choose("lm", "text", 50_000, CUDA, {}) == ({}, "")
    assert choose("vae", "text", 3_000, CPU, {})[0] == CPU_TEXT_VAE  # measured: bf16 does not help the VAE
    assert native_bf16(CUDA) is False and native_bf16(CPU) in (True, False)


def test_a_small_text_corpus_gets_a_small_regularised_lm_on_any_device(monkeypatch):
    monkeypatch.setattr(sizing, "native_bf16", lambda device: False)
    for device in (CPU, CUDA):
        settings, reason = choose("lm", "text", 2_741, device, {}, text_bytes=139_000)
        assert settings == SMALL_TEXT_LM == {"hidden_size": 256, "embed_dim": 128, "num_layers": 1,
                                             "vocab_size": 1000, "dropout": 0.3}
        assert reason.startswith("chose --hidden 256 --embed 128 --layers 1 --vocab-size 1000 --dropout 0.3 "
                                 "for 2,741 training lines")
        assert "139 KB of text overfit the shipped size within minutes" in reason
    assert choose("lm", "text", 2_741, CPU, {}, text_bytes=SMALL_TEXT_CORPUS)[0] == SMALL_TEXT_LM  # the edge
    assert choose("lm", "text", 50_000, CPU, {}, text_bytes=SMALL_TEXT_CORPUS + 1) == ({}, "")
    assert choose("lm", "text", 2_741, CPU, {"hidden_size": 512, "dropout": 0.1}, text_bytes=139_000)[0] == \
        {"embed_dim": 128, "num_layers": 1, "vocab_size": 1000}
    assert choose("lm", "text", 2_741, CPU, {}, arch="rnn", text_bytes=139_000) == ({}, "")  # --arch given
    assert choose("vae", "text", 2_741, CPU, {}, text_bytes=139_000)[0] == CPU_TEXT_VAE
    # where the CPU computes bf16 natively both rules apply, and the line gives both reasons
    monkeypatch.setattr(sizing, "native_bf16", lambda device: device.type == "cpu")
    settings, reason = choose("lm", "text", 2_741, CPU, {}, text_bytes=139_000)
    assert settings == {**SMALL_TEXT_LM, **CPU_TEXT_LM}
    assert reason.endswith("within minutes; this CPU computes bf16 natively, so mixed precision takes more steps "
                           "in a budget (flags override)")


def test_a_text_run_measures_its_corpus_in_bytes(tmp_path, corpus_file, monkeypatch):
    monkeypatch.setattr(sizing, "native_bf16", lambda device: False)
    out = tmp_path / "small"
    result = run("train", "lm", corpus_file, "-o", out, "--steps", 2, "--valid-every", 2, "--embed", 8,
                 "--batch-size", 4, "--seq-len", 16, "--vocab-size", 200, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = read_file(out / "model.pt")
    assert record["config"]["hidden_size"] == 256 and record["config"]["num_layers"] == 1
    assert record["config"]["dropout"] == 0.3 and record["config"]["embed_dim"] == 8
    # the size it read is the training split's (seed 0, 5% held out), not zero or the whole file's
    train_split, _ = split_holdout(read_text_corpus(corpus_file), 0.05, 0)
    expected = sum(len(line.encode("utf-8")) for line in train_split)
    assert f"for {len(train_split):,} training lines" in record["chosen"]["reason"]
    assert f" {expected / 1000:,.0f} KB of text overfit" in record["chosen"]["reason"]
    assert expected < 0.97 * read_text_corpus(corpus_file).nbytes


def test_lines_count_their_bytes_in_every_view(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("short\n  a longer line  \n\nünïcode ✓\nx\n", encoding="utf-8")
    lines = read_text_corpus(path)  # stripped, empty lines dropped
    assert list(lines) == ["short", "a longer line", "ünïcode ✓", "x"]
    assert lines.nbytes == 5 + 13 + len("ünïcode ✓".encode("utf-8")) + 1 == 32
    assert lines.take([2, 0]).nbytes == 13 + 5
    assert lines[1:3].nbytes == 13 + 13


def test_native_bf16_agrees_with_the_cpu_flags_linux_reports():
    """An independent reading of the same fact: the kernel's list of the CPU's instruction sets."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo on this system")
    flags = set(cpuinfo.read_text().split())
    assert native_bf16(CPU) == bool({"avx512_bf16", "amx_bf16", "amx_tile"} & flags)


def test_a_text_run_records_the_precision_it_trained_in(tmp_path, corpus_file, monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(sizing, "native_bf16", lambda device: native)
        out = tmp_path / str(native)
        result = run("train", "lm", corpus_file, "-o", out, "--steps", 2, "--valid-every", 2, "--hidden", 16,
                     "--embed", 8, "--batch-size", 4, "--seq-len", 16, "--quiet", "--device", "cpu")
        assert result.exit_code == 0, result.output
        train = read_file(out / "checkpoint.pt")["train"]
        assert (train["precision"], train["lr"]) == (("bf16", 2e-3) if native else ("float32", 3e-3))
        assert ("--precision bf16 --lr 0.002 for 570 training lines" in result.output) == native


def test_the_image_frame_tier_follows_the_number_of_images_on_any_device():
    for device in (CPU, CUDA):
        assert choose("lm", "image", 712, device, {})[0] == {"hidden_size": 64, "dropout": 0.3}
        assert choose("lm", "image", 4_000, device, {})[0] == {"hidden_size": 128, "dropout": 0.3}
        assert choose("lm", "image", 50_000, device, {}) == ({}, "")
    assert "712 images overfit a larger frame tier" in choose("lm", "image", 712, CPU, {})[1]


def test_the_image_vae_takes_smaller_batches_unless_told_or_sequential():
    for device in (CPU, CUDA):
        assert choose("vae", "image", 699, device, {})[0] == {"batch_size": 32, "lr": 2e-3}
    assert choose("vae", "image", 699, CPU, {"batch_size": 8, "lr": 1e-3}) == ({}, "")
    assert choose("vae", "image", 699, CPU, {}, arch="rnn") == ({}, "")


def test_every_flag_overrides_and_other_architectures_keep_their_defaults():
    settings, reason = choose("vae", "text", 3_000, CPU, {"hidden_size": 512, "free_bits": 0.5, "batch_size": 64})
    assert "hidden_size" not in settings and "free_bits" not in settings and "batch_size" not in settings
    assert settings["vocab_size"] == 1000 and "--vocab-size 1000" in reason and "--hidden" not in reason
    assert settings["latent_dim"] == 128 and "--latent 128" in reason
    assert choose("lm", "audio", 200, CPU, dict(CPU_AUDIO_LM)) == ({}, "")
    assert choose("lm", "audio", 200, CPU, {}, arch="rnn") == ({}, "")


def test_the_run_says_what_it_chose_and_the_model_file_keeps_it(tmp_path, corpus_file):
    out = tmp_path / "run"
    result = run("train", "vae", corpus_file, "-o", out, "--steps", 2, "--valid-every", 2, "--hidden", 24,
                 "--embed", 16, "--latent", 4, "--batch-size", 8, "--refit-steps", 1, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("chose "))
    assert "--lr 0.002 --vocab-size 1000 --free-bits 1.0 --word-dropout 0.3 --kl-schedule constant --splice 0.3 " in line
    assert "--latent" not in line  # given
    record = read_file(out / "model.pt")
    assert record["chosen"]["reason"] == line and record["config"]["free_bits"] == 1.0
    assert record["config"]["splice"] == 0.3 and record["config"]["latent_dim"] == 4
    assert record["config"]["proposal"] and any(name.startswith("proposal.") for name in record["model"])
    assert record["config"]["hidden_size"] == 24 and record["codec"]["kind"] == "text"


def test_an_audio_run_on_a_cpu_trains_with_the_chosen_windows(tmp_path, audio_folder):
    out = tmp_path / "audio"
    result = run("train", "lm", audio_folder, "-o", out, "--valid", audio_folder, "--steps", 2, "--valid-every", 2,
                 "--embed", 4, "--token-hidden", 8, "--sample-rate", 8000, "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = read_file(out / "checkpoint.pt")
    assert record["train"]["batch_size"] == 16 and record["train"]["seq_len"] == 1024
    assert record["config"]["frame_hidden"] == 256 and record["config"]["frame"] == 32
