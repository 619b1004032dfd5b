import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

import genseq
from genseq.cli import main
from genseq.store import read_file

from conftest import LINES

TINY = ["--hidden", "32", "--embed", "16", "--layers", "1", "--vocab-size", "200", "--batch-size", "8",
        "--seq-len", "24", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_lists_every_command_and_each_has_its_own():
    result = run("--help")
    assert result.exit_code == 0
    commands = sorted(main.commands)
    assert commands == ["complete", "continue", "demo", "eval", "export", "interpolate", "models", "reconstruct",
                        "refit", "sample", "train", "traverse"]
    for command in commands:
        assert f"  {command} " in result.output
        own = run(command, "--help")
        assert own.exit_code == 0 and f"Usage: main {command}" in own.output, command
    for task in ("lm", "vae"):
        own = run("train", task, "--help")
        assert own.exit_code == 0 and "--minutes" in own.output and "[default: " in own.output


def test_train_sample_eval_models(tmp_path, corpus_file):
    out = tmp_path / "run"
    result = run("train", "lm", corpus_file, "-o", out, "--steps", 12, "--valid-every", 6, *TINY)
    assert result.exit_code == 0, result.output
    assert "bits_per_char" in result.output
    assert {p.name for p in out.iterdir()} == {"model.pt", "best.pt", "checkpoint.pt", "metrics.jsonl", "samples"}

    result = run("sample", "-m", out, "-n", 3, "--prompt", "To be", "--temperature", 0.8, "--top-p", 0.9,
                 "--seed", 1, "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3 and all(line.startswith("To be") for line in lines)
    again = run("sample", "-m", out, "-n", 3, "--prompt", "To be", "--temperature", 0.8, "--top-p", 0.9,
                "--seed", 1, "--device", "cpu")
    assert again.output == result.output

    result = run("eval", corpus_file, "-m", out, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    for key in ("nll_nats_per_token", "bits_per_token", "perplexity", "tokens", "bits_per_char"):
        assert key in metrics
    assert metrics["bits_per_char"] < metrics["bits_per_token"]


def test_models_lists_every_shipped_model_with_its_scores():
    from genseq.store import shipped_models

    result = run("models")
    assert result.exit_code == 0
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()}
    assert set(rows) == set(shipped_models()) >= {"poems", "verse", "shakespeare", "speech", "piano", "sprites"}
    assert rows["poems"][1:3] == ["vae", "text"] and rows["speech"][1:3] == ["lm", "audio"]
    listed = [json.loads(line) for line in run("models", "--json").output.splitlines()]
    assert {row["name"] for row in listed} == set(shipped_models())
    speech = next(row for row in listed if row["name"] == "speech")
    assert 0 < speech["megabytes"] < 20 and 2 < speech["held_out"]["bits_per_sample"] < 8


def test_minutes_budget_sets_the_steps(tmp_path, corpus_file):
    out = tmp_path / "timed"
    result = run("train", "lm", corpus_file, "-o", out, "--minutes", 0.1, "--valid-every", 50, *TINY)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) >= 20


def test_python_dash_m_runs_the_same_cli():
    result = subprocess.run([sys.executable, "-m", "genseq", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Commands:" in result.stdout


def bad_inputs(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9\n")
    folder = tmp_path / "nothing"
    folder.mkdir()
    fake = tmp_path / "fake.pt"
    fake.write_text("not a model")
    return [
        (["train", "lm", empty, "-o", tmp_path / "r1"], "holds no text"),
        (["train", "lm", folder, "-o", tmp_path / "r2"], "holds no .txt, audio"),
        (["train", "lm", latin, "-o", tmp_path / "r3"], "is not UTF-8 text"),
        (["train", "lm", tmp_path / "missing.txt", "-o", tmp_path / "r4"], "does not exist"),
        (["sample", "-m", fake], "not a genseq model file"),
        (["sample", "-m", "no-such-model"], "no model file, run folder or shipped model named"),
        (["eval", empty, "-m", fake], "not a genseq model file"),
        (["train", "lm", empty, "-o", tmp_path / "r5", "--steps", 0], "0 is not in the range"),
        (["train", "lm", empty, "-o", tmp_path / "r6", "--steps", -3], "-3 is not in the range"),
        (["sample", "-m", fake, "--top-p", 1.5], "1.5 is not in the range"),
        (["sample", "-m", fake, "-n", -1], "-1 is not in the range"),
    ]


def test_bad_input_gets_one_clear_line(tmp_path):
    for args, message in bad_inputs(tmp_path):
        result = run(*args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), args
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 7))  # nothing made for a failed run


def test_bad_input_in_a_real_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "genseq", "sample", "-m", str(tmp_path / "x.pt")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no model file, run folder or shipped model")
    assert "Traceback" not in result.stderr


def test_a_failed_run_overwrites_nothing(tmp_path, corpus_file, tiny_run):
    before = {p.relative_to(tiny_run): p.read_bytes() for p in tiny_run.rglob('*') if p.is_file()}
    result = run("train", "lm", corpus_file, "-o", tiny_run, "--steps", 5, *TINY)
    assert result.exit_code != 0 and "already holds" in result.output
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run("train", "lm", empty, "-o", tiny_run, "--resume", *TINY)
    assert result.exit_code == 1 and "empty.txt holds no text" in result.output, result.output
    other = tmp_path / "other.txt"
    other.write_text("\n".join(f"another line {i}" for i in range(100)) + "\n")
    result = run("train", "lm", other, "-o", tiny_run, "--resume", *TINY)
    assert result.exit_code == 1 and "is not the corpus this run was trained on" in result.output, result.output
    assert {p.relative_to(tiny_run): p.read_bytes() for p in tiny_run.rglob('*') if p.is_file()} == before


def test_vae_commands(tiny_vae_run, tiny_run):
    result = run("interpolate", "床前明月光", "春眠不觉晓", "-m", tiny_vae_run, "--steps", 4)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["A", "床前明月光", "(given)"] and lines[-1].split() == ["B", "春眠不觉晓", "(given)"]
    assert len(lines) == 6 and lines[1].split()[1] == "床前明月光" and lines[4].split()[1] == "春眠不觉晓"
    for decode in ("greedy", "beam", "sample"):
        for refine in ("0", "10"):
            result = run("reconstruct", "春眠不觉晓", "-m", tiny_vae_run, "--decode", decode, "--seed", 1,
                         "--refine", refine)
            assert result.exit_code == 0 and result.output.startswith("春眠不觉晓  ->  "), result.output
    result = run("interpolate", "a", "b", "-m", tiny_vae_run, "--slerp", "--decode", "sample", "--seed", 2)
    assert result.exit_code == 0 and "never saw" in result.output
    result = run("sample", "-m", tiny_vae_run, "-n", 4, "--seed", 3)
    assert result.exit_code == 0 and len(result.output.splitlines()) == 4
    result = run("eval", tiny_vae_run / "model.pt", "-m", tiny_vae_run, "--json", "--iw-samples", 10)
    assert result.exit_code == 1  # a model file is no corpus
    assert "is not UTF-8 text" in result.output or "looks binary" in result.output


def test_vae_eval_json(tmp_path, tiny_vae_run):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("床前明月光\n春眠不觉晓\n", encoding="utf-8")
    result = run("eval", corpus, "-m", tiny_vae_run, "--json", "--iw-samples", 10)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["lines"] == 2 and metrics["iw_samples"] == 10
    assert metrics["iw_nll"] <= metrics["neg_elbo"] + 1e-3
    lines = ["床前明月光", "春眠不觉晓"]
    decoded = genseq.load(tiny_vae_run, "cpu").reconstruct(lines, refine=10)
    same = sum(a == b for line, out in zip(lines, decoded) for a, b in zip(line, out)) / 10
    assert metrics["refine_steps"] == 10 and metrics["recon_char_accuracy_refined"] == pytest.approx(same)
    result = run("eval", corpus, "-m", tiny_vae_run, "--json", "--iw-samples", 2, "--refine", 0)
    assert result.exit_code == 0 and "recon_char_accuracy_refined" not in json.loads(result.output)


def test_refit_command_writes_a_copy_with_its_proposal_fitted(tmp_path, tiny_vae_run, tiny_run):
    import torch

    from genseq.store import load_model

    corpus = tmp_path / "lines.txt"
    corpus.write_text("床前明月光\n春眠不觉晓\n疑是地上霜\n", encoding="utf-8")
    out = tmp_path / "refit.pt"
    result = run("refit", corpus, "-m", tiny_vae_run, "-o", out, "--steps", 5, "--valid", corpus, "--quiet")
    assert result.exit_code == 0, result.output
    source, refit = load_model(str(tiny_vae_run)), load_model(str(out))
    assert refit.record["refit"]["steps"] == 5 and refit.record["valid"]["lines"] == 3
    a, b = source.model.state_dict(), refit.model.state_dict()
    assert torch.equal(a["head.weight"], b["head.weight"]) and torch.equal(a["posterior.weight"], b["posterior.weight"])
    start = a.get("proposal.posterior.weight", a["posterior.weight"])  # goes on from a proposal, or the encoder
    assert refit.record["config"]["proposal"] and not torch.equal(start, b["proposal.posterior.weight"])
    result = run("refit", corpus, "-m", tiny_run, "-o", tmp_path / "x.pt")
    assert result.exit_code == 1 and "is a language model" in result.output and not (tmp_path / "x.pt").exists()


def test_vae_commands_refuse_language_models_and_empty_lines(tiny_run, tiny_vae_run):
    result = run("interpolate", "a", "b", "-m", tiny_run)
    assert result.exit_code == 1
    assert "is a language model; this command needs a VAE: train one with genseq train vae" in result.output
    result = run("reconstruct", "", "-m", tiny_vae_run)
    assert result.exit_code == 1 and "empty line" in result.output
    result = run("interpolate", "a", "b", "-m", tiny_vae_run, "--steps", 0)
    assert result.exit_code == 2 and "0 is not in the range" in result.output
    result = run("sample", "-m", tiny_vae_run, "--prompt", "x")
    assert result.exit_code == 1 and "takes no --prompt" in result.output


def test_export_can_store_fresh_held_out_scores(tiny_run, corpus_file, audio_folder, tmp_path):
    target = tmp_path / "rescored.pt"
    result = run("export", tiny_run, target, "--precision", "float32", "--valid", corpus_file)
    assert result.exit_code == 0, result.output
    old, new = read_file(tiny_run / "model.pt")["valid"], read_file(target)["valid"]
    scored = json.loads(run("eval", corpus_file, "-m", tiny_run, "--json").output)
    assert new["bits_per_token"] == pytest.approx(scored["bits_per_token"], rel=1e-5)
    assert new["step"] == old["step"] and new["tokens"] != old["tokens"]  # the whole file, not the held-out lines
    result = run("export", tiny_run, tmp_path / "no.pt", "--valid", audio_folder)
    assert result.exit_code == 1 and "holds audio but the model is a text model" in result.output
    assert not (tmp_path / "no.pt").exists()


def test_init_fine_tunes_a_model_from_its_weights(tmp_path, corpus_file, tiny_run):
    """--init starts from the model's weights, codec and shape: at a learning rate too small to
    move them, the run's held-out score is the model's own, and the file records its start."""
    result = run("eval", corpus_file, "-m", tiny_run, "--json")
    assert result.exit_code == 0, result.output
    own = json.loads(result.output)["bits_per_token"]
    out = tmp_path / "tuned"
    result = run("train", "lm", corpus_file, "--valid", corpus_file, "-o", out, "--init", tiny_run,
                 "--steps", 1, "--lr", "1e-12", "--batch-size", 4, "--quiet")
    assert result.exit_code == 0, result.output
    tuned, start = read_file(out / "model.pt"), read_file(tiny_run / "model.pt")
    assert tuned["config"] == start["config"] and tuned["codec"] == start["codec"]
    assert tuned["init"]["model"] == str(tiny_run) and len(tuned["init"]["sha256"]) == 64
    assert "chosen" not in tuned
    assert tuned["valid"]["bits_per_token"] == pytest.approx(own, rel=1e-5)


def test_init_drops_a_proposal_fitted_to_the_decoder_it_changes(tmp_path, tiny_vae_run):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    start = read_file(tiny_vae_run / "model.pt")
    assert start["config"]["proposal"] and any(k.startswith("proposal.") for k in start["model"])
    result = run("train", "vae", corpus, "--valid", corpus, "-o", tmp_path / "tuned", "--init", tiny_vae_run,
                 "--steps", 2, "--refit-steps", 0, "--quiet")
    assert result.exit_code == 0, result.output
    tuned = read_file(tmp_path / "tuned" / "model.pt")
    assert not tuned["config"]["proposal"] and not any(k.startswith("proposal.") for k in tuned["model"])
    assert genseq.load(tmp_path / "tuned", "cpu").model.proposal is None


def test_init_takes_a_new_objective_for_a_vae(tmp_path, tiny_vae_run):
    """A fine-tune may change how the VAE trains (word dropout, free bits, ...), not its shape."""
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    result = run("train", "vae", corpus, "--valid", corpus, "-o", tmp_path / "tuned", "--init", tiny_vae_run,
                 "--word-dropout", "0", "--free-bits", "2", "--steps", 1, "--refit-steps", 0, "--quiet")
    assert result.exit_code == 0, result.output
    start, tuned = (read_file(path / "model.pt")["config"] for path in (tiny_vae_run, tmp_path / "tuned"))
    assert (tuned["word_dropout"], tuned["free_bits"]) == (0.0, 2.0) != (start["word_dropout"], start["free_bits"])
    assert {k: v for k, v in tuned.items() if k not in ("word_dropout", "free_bits", "proposal")} == \
        {k: v for k, v in start.items() if k not in ("word_dropout", "free_bits", "proposal")}
    result = run("train", "vae", corpus, "-o", tmp_path / "wider", "--init", tiny_vae_run, "--word-dropout", "0",
                 "--latent", "3", "--steps", 1)
    assert result.exit_code == 1 and "--latent: the model's shape and codec come from --init" in result.output


@pytest.mark.parametrize("args, message", [
    (["--hidden", "64"], "--hidden: the model's shape and codec come from --init"),
    (["--vocab-size", "300", "--layers", "2"], "--layers, --vocab-size: the model's shape"),
    ([], "is a lm model; start a vae run from a vae model"),
])
def test_init_refuses_what_would_change_the_model(tmp_path, corpus_file, tiny_run, args, message):
    task = "vae" if not args else "lm"
    result = run("train", task, corpus_file, "-o", tmp_path / "run", "--init", tiny_run, "--steps", 1, *args)
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "run" / "model.pt").exists()


def test_init_refuses_another_kind_of_data(tmp_path, tiny_run):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        Image.new("RGBA", (8, 8), (i * 60, 0, 0, 255)).save(images / f"{i}.png")
    result = run("train", "lm", images, "-o", tmp_path / "run", "--init", tiny_run, "--steps", 1)
    assert result.exit_code == 1 and "models text, and this corpus is image" in result.output, result.output
