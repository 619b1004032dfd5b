"""The ``genseq`` command line: a thin layer over the library, one function call per command."""

import json
from pathlib import Path

import click

from genseq import __version__
from genseq.device import DEVICES, pick_device
from genseq.errors import GenseqError
from genseq.lm import lm_metrics, sample_text, train_lm
from genseq.codecs import read_text_corpus
from genseq.store import load_model, read_file, shipped_models
from genseq.train import TrainConfig


class Group(click.Group):
    """Turns :class:`GenseqError` into one line on stderr and exit status 1, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GenseqError as e:
            raise click.ClickException(str(e)) from None


def device_option(f):
    return click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                        help="Where to run: auto picks cuda, then mps, then cpu.")(f)


def model_option(f):
    return click.option("-m", "--model", "model_spec", required=True, metavar="MODEL",
                        help="A model file, a run folder, or a shipped model's name (genseq models).")(f)


def sampling_options(f):
    for option in reversed([
        click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
                     help="Softmax temperature; 0 means greedy."),
        click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Sample only from the k most likely tokens (0: all)."),
        click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0,
                     show_default=True, help="Nucleus sampling: the smallest set with this much probability."),
        click.option("--seed", type=int, default=None, help="Seed for reproducible samples."),
    ]):
        f = option(f)
    return f


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="genseq")
def main():
    """Generate sequences (text, audio, images) with autoregressive RNNs.

    Every modality is a sequence of tokens through one codec, one model, one trainer and one
    generate function. Try: genseq train lm corpora/shakespeare/train.txt -o runs/verse --minutes 3
    """


@main.group()
def train():
    """Train a model on a corpus (train lm: a language model)."""


@train.command("lm")
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("-o", "--out", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run folder for model.pt, checkpoint.pt and metrics.jsonl.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimizer steps in all [default: 2000 unless --minutes is given].")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Train for about this long instead of a number of steps.")
@click.option("--valid", "valid_path", type=click.Path(path_type=Path), default=None,
              help="A held-out file; without it --valid-fraction of the corpus is held out.")
@click.option("--valid-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.05, help="Share of the corpus held out (by seed) when --valid is not given.")
@click.option("--tokenizer", type=click.Choice(["unigram", "bpe", "char"]), default="unigram",
              help="SentencePiece model type.")
@click.option("--vocab-size", type=click.IntRange(min=8), default=2000, help="SentencePiece vocabulary size.")
@click.option("--cell", type=click.Choice(["gru", "lstm"]), default="gru")
@click.option("--hidden", type=click.IntRange(min=1), default=512, help="Hidden units per layer.")
@click.option("--layers", type=click.IntRange(min=1), default=2)
@click.option("--embed", type=click.IntRange(min=1), default=256, help="Embedding size.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1)
@click.option("--tie/--no-tie", default=False, help="Tie input embeddings and output weights.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32)
@click.option("--seq-len", type=click.IntRange(min=2), default=128, help="Tokens per training window.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, help="Peak learning rate.")
@click.option("--valid-every", type=click.IntRange(min=1), default=250, help="Steps between validations.")
@click.option("--seed", type=int, default=0, help="Seed for the split, initialisation and batches.")
@click.option("--resume", is_flag=True, help="Continue the run in -o from its checkpoint, exactly.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@device_option
def train_lm_command(corpus, run_dir, steps, minutes, valid_path, valid_fraction, tokenizer, vocab_size,
                     cell, hidden, layers, embed, dropout, tie, batch_size, seq_len, lr, valid_every,
                     seed, resume, quiet, device):
    """Train an RNN language model on CORPUS: a UTF-8 text file or a folder of .txt files.

    A SentencePiece tokenizer is trained on the training split and stored in the model file.
    """
    if steps is not None and minutes is not None:
        raise GenseqError("give --steps or --minutes, not both")
    if steps is None and minutes is None:
        steps = 2000
    config = TrainConfig(steps=steps, minutes=minutes, batch_size=batch_size, seq_len=seq_len, lr=lr,
                         valid_every=valid_every, seed=seed)
    model_config = dict(cell=cell, hidden_size=hidden, num_layers=layers, embed_dim=embed,
                        dropout=dropout, tie_embeddings=tie)
    metrics = train_lm(corpus, run_dir, model_config=model_config, train_config=config,
                       valid=valid_path, valid_fraction=valid_fraction, tokenizer=tokenizer,
                       vocab_size=vocab_size, device=pick_device(device), resume=resume,
                       progress=not quiet)
    click.echo(f"held-out: {metrics['bits_per_char']:.3f} bits/char, {metrics['bits_per_token']:.3f} "
               f"bits/token, perplexity {metrics['perplexity']:.2f} ({metrics['tokens']:,} tokens)",
               err=True)
    click.echo(f"model written to {run_dir / 'model.pt'}", err=True)


@main.command()
@model_option
@click.option("-n", "count", type=click.IntRange(min=1, max=10_000), default=5, help="How many lines.")
@click.option("--prompt", default=None, help="Start every line with this text.")
@click.option("--max-tokens", type=click.IntRange(min=1, max=100_000), default=200,
              help="Longest line, in tokens.")
@sampling_options
@device_option
def sample(model_spec, count, prompt, max_tokens, temperature, top_k, top_p, seed, device):
    """Sample lines from a language model, optionally continuing --prompt."""
    loaded = load_model(model_spec, pick_device(device), task="lm")
    for line in sample_text(loaded, count, prompt, max_tokens, temperature=temperature, top_k=top_k,
                            top_p=top_p, seed=seed):
        click.echo(line)


@main.command("eval")
@click.argument("corpus", type=click.Path(path_type=Path))
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@device_option
def eval_command(corpus, model_spec, as_json, device):
    """Score held-out CORPUS under a model: NLL, bits per token and per character, perplexity."""
    loaded = load_model(model_spec, pick_device(device), task="lm")
    items = read_text_corpus(corpus)
    metrics = lm_metrics(loaded.model, loaded.codec, items)
    del metrics["loss"]
    if as_json:
        click.echo(json.dumps({"model": str(loaded.path), "corpus": str(corpus), **metrics}))
        return
    for name, value in metrics.items():
        click.echo(f"{name:>20}  {value:,.4f}" if isinstance(value, float) else f"{name:>20}  {value:,}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per model.")
def models(as_json):
    """List the trained models that ship with genseq."""
    shipped = shipped_models()
    if not shipped:
        click.echo("no models ship with this genseq yet; train one with genseq train lm", err=True)
    for name, path in shipped.items():
        record = read_file(path)
        valid = record.get("valid") or {}
        score = {k: round(v, 4) for k, v in valid.items() if k.startswith("bits_per")}
        row = {"name": name, "task": record["task"], "kind": record["codec"]["kind"],
               "corpus": record["corpus"]["name"], "megabytes": round(path.stat().st_size / 1e6, 2),
               "held_out": score}
        if as_json:
            click.echo(json.dumps(row))
        else:
            scores = ", ".join(f"{v} {k.replace('_', ' ').replace('bits per', 'bits/')}" for k, v in score.items())
            click.echo(f"{name:<12} {row['task']:<4} {row['kind']:<6} {row['corpus']:<24} "
                       f"{row['megabytes']:>5.1f} MB  {scores}")
