"""The ``genseq`` command line: a thin layer over the library, one function call per command."""

import json
from pathlib import Path

import click

from genseq import __version__
from genseq.device import DEVICES, pick_device
from genseq.errors import GenseqError
from genseq.codecs import read_text_corpus
from genseq.store import PRECISIONS, export_model, load_model, read_file, shipped_models
from genseq.tasks import TASKS, sample_text, train
from genseq.train import TrainConfig
from genseq.vae import DECODERS, interpolate, reconstruct, sample_prior


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


def model_option(default: str | None = None):
    return click.option("-m", "--model", "model_spec", required=default is None, default=default,
                        metavar="MODEL", show_default=default is not None,
                        help="A model file, a run folder, or a shipped model's name (genseq models).")


def decoding_options(f):
    f = click.option("--beam", type=click.IntRange(min=1, max=100), default=5,
                     help="Beam width for --decode beam.")(f)
    return click.option("--decode", type=click.Choice(DECODERS), default="greedy",
                        help="How a VAE's latent code becomes a line.")(f)


def stack(*decorators):
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


sampling_options = stack(
        click.option("--temperature", type=click.FloatRange(min=0), default=1.0, show_default=True,
                     help="Softmax temperature; 0 means greedy."),
        click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Sample only from the k most likely tokens (0: all)."),
        click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0,
                     show_default=True, help="Nucleus sampling: the smallest set with this much probability."),
        click.option("--seed", type=int, default=None, help="Seed for reproducible samples."),
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="genseq")
def main():
    """Generate sequences with autoregressive RNNs and a sentence VAE.

    Text, audio and images are sequences of tokens through one codec, one model, one trainer and
    one generate function. Try: genseq interpolate "床前明月光" "春眠不觉晓"
    """


@main.group("train", short_help="Train a language model or a sentence VAE.")
def train_group():
    """Train a model on a corpus: lm (language model) or vae (sentence VAE)."""


def training_options(batch_size: int, lr: float, hidden: int):
    """The options every ``train`` command shares, with the task's own defaults."""
    return stack(
        click.argument("corpus", type=click.Path(path_type=Path)),
        click.option("-o", "--out", "run_dir", required=True, type=click.Path(path_type=Path),
                     help="Run folder for model.pt, checkpoint.pt and metrics.jsonl."),
        click.option("--steps", type=click.IntRange(min=1), default=None,
                     help="Optimizer steps in all [default: 2000 unless --minutes is given]."),
        click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Train for about this long instead of a number of steps."),
        click.option("--valid", "valid_path", type=click.Path(path_type=Path), default=None,
                     help="A held-out file; without it --valid-fraction of the corpus is held out."),
        click.option("--valid-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     default=0.05, help="Share of the corpus held out (by seed) without --valid."),
        click.option("--tokenizer", type=click.Choice(["auto", "unigram", "bpe", "char"]), default="auto",
                     help="SentencePiece model type; auto: char for Chinese, unigram otherwise."),
        click.option("--vocab-size", type=click.IntRange(min=8), default=2000,
                     help="SentencePiece vocabulary size (char: at most this many characters)."),
        click.option("--cell", type=click.Choice(["gru", "lstm"]), default="gru"),
        click.option("--hidden", type=click.IntRange(min=1), default=hidden, help="Hidden units per layer."),
        click.option("--embed", type=click.IntRange(min=1), default=256, help="Embedding size."),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.1),
        click.option("--batch-size", type=click.IntRange(min=1), default=batch_size),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=lr, help="Peak learning rate."),
        click.option("--valid-every", type=click.IntRange(min=1), default=250, help="Steps between validations."),
        click.option("--seed", type=int, default=0, help="Seed for the split, initialisation and batches."),
        click.option("--resume", is_flag=True,
                     help="Continue the run in -o from its checkpoint, exactly, with its own settings."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        device_option,
    )


def run_training(task, corpus, run_dir, steps, minutes, valid_path, valid_fraction, tokenizer,
                 vocab_size, batch_size, lr, valid_every, seed, resume, quiet, device, seq_len=128,
                 **model_config):
    if steps is not None and minutes is not None:
        raise GenseqError("give --steps or --minutes, not both")
    if steps is None and minutes is None:
        steps = 2000
    config = TrainConfig(steps=steps, minutes=minutes, batch_size=batch_size, seq_len=seq_len, lr=lr,
                         valid_every=valid_every, seed=seed)
    metrics = train(task, corpus, run_dir, model_config=model_config, train_config=config,
                    valid=valid_path, valid_fraction=valid_fraction, tokenizer=tokenizer,
                    vocab_size=vocab_size, device=pick_device(device), resume=resume, progress=not quiet)
    shown = {k: metrics[k] for k in ("bits_per_char", "perplexity", "neg_elbo", "kl", "active_units",
                                      "recon_char_accuracy") if k in metrics}
    click.echo("held-out: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in shown.items()), err=True)
    click.echo(f"model written to {run_dir / 'model.pt'}", err=True)


@train_group.command("lm", short_help="An RNN language model on a text corpus.")
@training_options(batch_size=32, lr=3e-3, hidden=512)
@click.option("--layers", "num_layers", type=click.IntRange(min=1), default=2)
@click.option("--tie/--no-tie", "tie_embeddings", default=False, help="Tie input embeddings and output weights.")
@click.option("--seq-len", type=click.IntRange(min=2), default=128, help="Tokens per training window.")
def train_lm_command(hidden, embed, **options):
    """Train an RNN language model on CORPUS: a UTF-8 text file or a folder of .txt files.

    A SentencePiece tokenizer is trained on the training split and stored in the model file.
    """
    run_training("lm", hidden_size=hidden, embed_dim=embed, **options)


@train_group.command("vae", short_help="A sentence VAE on a file of lines.")
@training_options(batch_size=64, lr=1e-3, hidden=512)
@click.option("--latent", "latent_dim", type=click.IntRange(min=1), default=32, help="Latent dimensions.")
@click.option("--word-dropout", type=click.FloatRange(0, 1, max_open=True), default=0.25,
              help="Share of decoder inputs replaced by unk (Bowman et al. 2016).")
@click.option("--free-bits", type=click.FloatRange(min=0), default=0.5,
              help="KL floor per latent dimension in nats (Kingma et al. 2016); 0: off.")
@click.option("--kl-schedule", type=click.Choice(["constant", "linear", "logistic", "cyclical"]),
              default="cyclical", help="KL annealing: logistic is Bowman's, cyclical Fu et al.'s.")
@click.option("--kl-anneal-steps", type=click.IntRange(min=1), default=2000,
              help="Ramp length (linear, logistic) or cycle length (cyclical).")
@click.option("--kl-cycles", type=click.IntRange(min=1), default=4, help="Cycles before the weight holds.")
@click.option("--beta", type=click.FloatRange(min=0), default=1.0, help="Final KL weight.")
@click.option("--ae-pretrain-steps", type=click.IntRange(min=0), default=0,
              help="Train as an autoencoder first, then reset the decoder (Li et al. 2019).")
def train_vae_command(hidden, embed, **options):
    """Train a sentence VAE on CORPUS: one line per item, a text file or a folder of .txt files."""
    run_training("vae", hidden_size=hidden, embed_dim=embed, **options)


@main.command(short_help="Sample lines from an LM or a VAE's prior.")
@model_option("shakespeare")
@click.option("-n", "count", type=click.IntRange(min=1, max=10_000), default=5, help="How many lines.")
@click.option("--prompt", default=None, help="Start every line with this text (language models).")
@click.option("--max-tokens", type=click.IntRange(min=1, max=100_000), default=200,
              help="Longest line, in tokens (language models).")
@decoding_options
@sampling_options
@device_option
def sample(model_spec, count, prompt, max_tokens, decode, beam, temperature, top_k, top_p, seed, device):
    """Sample lines: from a language model, or from a VAE's prior."""
    loaded = load_model(model_spec, pick_device(device))
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p)
    if loaded.record["task"] == "vae":
        if prompt:
            raise GenseqError("a VAE samples whole lines from its prior and takes no --prompt; "
                              "use genseq reconstruct or interpolate to start from a line")
        lines = sample_prior(loaded, count, seed=seed, decode=decode, beam=beam, **sampling)
    else:
        lines = sample_text(loaded, count, prompt, max_tokens, seed=seed, **sampling)
    for line in lines:
        click.echo(line)


@main.command("eval", short_help="Score a held-out corpus under a model.")
@click.argument("corpus", type=click.Path(path_type=Path))
@model_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--iw-samples", type=click.IntRange(min=1), default=500,
              help="Importance samples per line for a VAE's IW-NLL.")
@click.option("--seed", type=int, default=0, help="Seed for the VAE's latent samples.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N items.")
@device_option
def eval_command(corpus, model_spec, as_json, iw_samples, seed, limit, device):
    """Score held-out CORPUS: NLL, bits per token and character, perplexity; for a VAE also
    IW-NLL, KL, mutual information, active units and reconstruction accuracy."""
    loaded = load_model(model_spec, pick_device(device))
    items = read_text_corpus(corpus)[:limit]
    task = loaded.record["task"]
    extra = {"iw_samples": iw_samples, "seed": seed} if task == "vae" else {}
    metrics = TASKS[task].metrics(loaded.model, loaded.codec, items, **extra)
    del metrics["loss"]
    if as_json:
        click.echo(json.dumps({"model": str(loaded.path), "corpus": str(corpus), **metrics}))
        return
    for name, value in metrics.items():
        click.echo(f"{name:>20}  {value:,.4f}" if isinstance(value, float) else f"{name:>20}  {value:,}")


def vae_option(f):
    return model_option("poems")(f)


@main.command("interpolate", short_help="Decode the path between two lines (VAE).")
@click.argument("first")
@click.argument("second")
@vae_option
@click.option("--steps", type=click.IntRange(min=2, max=1000), default=8,
              help="Points on the path, both ends included.")
@click.option("--slerp", is_flag=True, help="Walk the great circle instead of the straight line.")
@decoding_options
@sampling_options
@device_option
def interpolate_command(first, second, model_spec, steps, slerp, decode, beam, temperature, top_k,
                        top_p, seed, device):
    """Decode the latent path between two lines into a row of lines (a sentence VAE)."""
    loaded = load_vae(model_spec, device)
    path = interpolate(loaded, first, second, steps, spherical=slerp, warn=warn, decode=decode,
                       beam=beam, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    click.echo(f"{'A':>5}  {first}  (given)")
    for t, line in path:
        click.echo(f"{t:5.2f}  {line}")
    click.echo(f"{'B':>5}  {second}  (given)")


@main.command("reconstruct", short_help="Encode lines, decode them back (VAE).")
@click.argument("lines", nargs=-1, required=True)
@vae_option
@decoding_options
@sampling_options
@device_option
def reconstruct_command(lines, model_spec, decode, beam, temperature, top_k, top_p, seed, device):
    """Encode each line to its posterior mean and decode it back (a sentence VAE)."""
    loaded = load_vae(model_spec, device)
    decoded = reconstruct(loaded, list(lines), warn=warn, decode=decode, beam=beam,
                          temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    for line, out in zip(lines, decoded):
        click.echo(f"{line}  ->  {out}")


def warn(message: str) -> None:
    click.echo(message, err=True)


def load_vae(model_spec: str, device: str):
    loaded = load_model(model_spec, pick_device(device))
    if loaded.record["task"] != "vae":
        raise GenseqError(f"{model_spec} is a language model; this command needs a VAE: train one "
                          "with genseq train vae")
    return loaded


@main.command(short_help="List the models that ship with genseq.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per model.")
def models(as_json):
    """List the trained models that ship with genseq."""
    shipped = shipped_models()
    if not shipped:
        click.echo("no models ship with this genseq yet; train one with genseq train lm", err=True)
    for name, path in shipped.items():
        record = read_file(path)
        valid = record.get("valid") or {}
        score = {k: round(valid[k], 3) for k in ("bits_per_char", "perplexity", "neg_elbo", "kl",
                                                 "recon_char_accuracy") if k in valid}
        row = {"name": name, "task": record["task"], "kind": record["codec"]["kind"],
               "corpus": record["corpus"]["name"], "megabytes": round(path.stat().st_size / 1e6, 2),
               "held_out": score}
        if as_json:
            click.echo(json.dumps(row))
        else:
            scores = ", ".join(f"{k} {v}" for k, v in score.items())
            click.echo(f"{name:<12} {row['task']:<4} {row['kind']:<5} {row['corpus']:<34} "
                       f"{row['megabytes']:>4.1f} MB  held-out {scores}")


@main.command("export", short_help="Write a shareable copy of a model.")
@click.argument("source", metavar="MODEL")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--precision", type=click.Choice(PRECISIONS), default="float16",
              help="How weights are stored: float16 halves the file, per-row int8 quarters it.")
def export_command(source, target, precision):
    """Write MODEL (file, run folder or name) as one shareable model file, weights only."""
    size = export_model(source, target, precision)
    click.echo(f"wrote {target} ({size / 1e6:.1f} MB)", err=True)
