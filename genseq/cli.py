"""The ``genseq`` command line: a thin layer over the library, one function call per command."""

import json
from pathlib import Path

import click
import numpy as np
import torch

from genseq import __version__
from genseq.api import load, train
from genseq.codecs.audio import SAMPLE_RATE, AudioCodec
from genseq.codecs.image import IMAGE_SUFFIXES, NATIVE_LIMIT, PALETTE, SIZE
from genseq.codecs.text import VOCAB_SIZE
from genseq.device import DEVICES
from genseq.errors import GenseqError
from genseq.store import PRECISIONS, export_model, read_file, sampling_flags, shipped_models
from genseq.media import audio_picture, check_output, grid, hide_below, write_png, write_wav
from genseq.codecs.base import Codec
from genseq.models import FrameConfig, ImageVAEConfig, RNNConfig, VAEConfig
from genseq.models.vae import KL_SCHEDULES
from genseq.tasks import FRAME_DEFAULTS, TASKS
from genseq.train import TrainConfig
from genseq.vae import DECODERS, IW_FIT_STEPS, REFINE_STEPS, REFIT_LR


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
    f = click.option("--beam", type=click.IntRange(min=1, max=100), default=5, show_default=True,
                     help="Beam width for --decode beam.")(f)
    return click.option("--decode", type=click.Choice(DECODERS), default="greedy", show_default=True,
                        help="How a VAE's latent code becomes a line.")(f)


def refine_option(f):
    return click.option("--refine", type=click.IntRange(min=0), default=REFINE_STEPS, show_default=True,
                        help="Steps that refine each line's code from the encoder's posterior mean "
                             "towards the code that decodes it best (0: the mean itself).")(f)


def stack(*decorators):
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


OWN = "[default: the model's own (genseq models shows it), else {}]"
sampling_options = stack(
        click.option("--temperature", type=click.FloatRange(min=0), default=None,
                     help="Softmax temperature; 0 means greedy. " + OWN.format("1; the piano's is 0.9")),
        click.option("--top-k", type=click.IntRange(min=0), default=None,
                     help="Sample only from the k most likely tokens (0: all). " + OWN.format(0)),
        click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
                     help="Nucleus sampling: the smallest set with this much probability. " + OWN.format(1)),
        click.option("--seed", type=int, default=None, help="Seed for reproducible samples."),
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="genseq")
def main():
    """Generate sequences with autoregressive RNNs and a sequence VAE.

    Text, audio and images are sequences of tokens through one codec interface, one trainer and
    one generate function. Try: genseq demo --open
    """


@main.group("train", short_help="Train an autoregressive model or a VAE.")
def train_group():
    """Train a model on a corpus: lm (an autoregressive model of text, audio or images) or vae
    (a sequence VAE of lines of text or of images).

    Settings left unset are chosen for the corpus and the device (smaller models on a CPU, a small
    frame tier for a few thousand images); the run says what it chose in one line, and every
    flag overrides."""


def default_of(config_cls, name: str):
    """A config dataclass's default for field ``name``: the one place each default lives."""
    return config_cls.__dataclass_fields__[name].default


def frame_default(kind: str, name: str):
    """The frame model's default ``name`` for ``kind`` data (audio or image)."""
    return FRAME_DEFAULTS[kind].get(name, default_of(FrameConfig, name))


def training_options(task: str):
    """The options every ``train`` command shares, with the task's own defaults."""
    defaults = TASKS[task].train_defaults
    config = RNNConfig if task == "lm" else VAEConfig
    if task == "lm":
        frame = {name: f"; audio {frame_default('audio', key)}, images {frame_default('image', key)}"
                       f"{' in the frame tier' if name == 'hidden' else ''}"
                 for name, key in (("hidden", "frame_hidden"), ("embed", "embed_dim"), ("dropout", "dropout"))}
    else:  # the image VAE's first convolution's channels, colour embedding and dropout
        frame = {name: f"; images {default_of(ImageVAEConfig, key)}"
                 for name, key in (("hidden", "channels"), ("embed", "embed_dim"), ("dropout", "dropout"))}
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
        click.option("--vocab-size", type=click.IntRange(min=8), default=None,
                     help="SentencePiece vocabulary size (char: at most this many characters) "
                          f"[default: {VOCAB_SIZE}, or as chosen for the corpus and device]."),
        click.option("--cell", type=click.Choice(["gru", "lstm"]), default=None,
                     help=f"Text models' recurrent cell [default: {default_of(config, 'cell')}]."),
        click.option("--hidden", type=click.IntRange(min=1), default=None,
                     help=f"Hidden units per layer [default: {default_of(config, 'hidden_size')}{frame['hidden']}]."),
        click.option("--embed", type=click.IntRange(min=1), default=None,
                     help=f"Embedding size [default: {default_of(config, 'embed_dim')}{frame['embed']}]."),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help=f"Dropout [default: {default_of(config, 'dropout')}{frame['dropout']}]."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help=f"Items or windows per step [default: {defaults['batch_size']}, or as chosen]."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
                     help=f"Peak learning rate [default: {defaults['lr']:g}, or as chosen]."),
        click.option("--valid-every", type=click.IntRange(min=1), default=250, help="Steps between validations."),
        click.option("--seed", type=int, default=0, help="Seed for the split, initialisation and batches."),
        click.option("--checkpoint-minutes", type=click.FloatRange(min=0, min_open=True),
                     default=default_of(TrainConfig, "checkpoint_minutes"),
                     help="Also write a checkpoint when this many minutes have passed since the last one."),
        click.option("--keep-checkpoints", type=click.IntRange(min=0), default=0,
                     help="Also keep the last N checkpoints in RUN/checkpoints/ (0: only the latest)."),
        click.option("--ema", type=click.FloatRange(0, 1, max_open=True), default=0.0,
                     help="Validate and write the model as an exponential moving average of the weights "
                          "with this decay (0.999 suits small corpora that overfit; 0: off)."),
        click.option("--precision", type=click.Choice(["float32", "bf16", "fp16"]), default=None,
                     help="Mixed precision for the forward pass: bf16 (CPU or GPU), fp16 (CUDA) [default: "
                          "float32, or bf16 for text language models on CPUs that compute it natively]."),
        click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model (slow to start)."),
        click.option("--resume", is_flag=True,
                     help="Continue the run in -o from its checkpoint, exactly, with its own settings."),
        click.option("--init", "init", default=None, metavar="MODEL",
                     help="Start from this model's weights, codec and shape (a model file, run folder or "
                          "shipped name) and fine-tune it on CORPUS; --dropout and a VAE's objective (--word-dropout, "
                          "--free-bits, the KL schedule, --beta, --splice) may change."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        device_option,
    )


def run_training(task, corpus, run_dir, quiet, compile_model, valid_path, **options):
    metrics = train(task, corpus, run_dir, valid=valid_path, progress=not quiet, compile=compile_model, **options)
    if metrics is None:  # not rank 0 of a torchrun job: rank 0 reports
        return
    click.echo(summary_line(metrics), err=True)
    if "try" in metrics.get("summary", {}):
        click.echo(f"try: {metrics['summary']['try']}", err=True)
    click.echo(f"model written to {run_dir / 'model.pt'} (best validation: {run_dir / 'best.pt'})", err=True)


SHOWN = ("bits_per_char", "bits_per_sample", "bits_per_dim", "nats_per_pixel", "perplexity", "neg_elbo", "kl",
         "active_units", "recon_char_accuracy", "recon_pixel_accuracy")


def summary_line(metrics: dict) -> str:
    """``held-out: bits_per_char 2.105 (unigram 4.912), ...``: the final scores beside what
    puts them in context (the unigram's cost, reconstruction of training items)."""
    context = metrics.get("summary", {})
    parts = []
    for key in SHOWN:
        if key not in metrics:
            continue
        value = metrics[key]
        text = f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
        if f"unigram_{key}" in context:
            text += f" (unigram {context[f'unigram_{key}']:.3f})"
        if f"train_{key}" in context:
            text += f" (training items {context[f'train_{key}']:.3f})"
        parts.append(text)
    return "held-out: " + ", ".join(parts)


def parse_size(ctx, param, value):
    if value is None:
        return None
    try:
        height, _, width = value.lower().partition("x")
        size = (int(height), int(width or height))
    except ValueError:
        raise click.BadParameter("give HEIGHTxWIDTH in pixels, e.g. 32x32, or one number") from None
    if not all(4 <= side <= 256 for side in size):
        raise click.BadParameter("each side must be 4 to 256 pixels")
    return size


image_options = stack(
    click.option("--palette", type=click.IntRange(min=2, max=4096), default=None,
                 help=f"Images: colours in the k-means palette [default: the lecture's {PALETTE}]."),
    click.option("--size", callback=parse_size, default=None,
                 help=f"Images: HEIGHTxWIDTH the model draws [default: the images' own size when they "
                      f"share one of at most {NATIVE_LIMIT}x{NATIVE_LIMIT}, else {SIZE[0]}x{SIZE[1]}]."),
    click.option("--colormap", type=click.Path(path_type=Path), default=None,
                 help="Images in the lecture's format: CORPUS is pixel_color.txt, this its colormap.txt."),
)


@train_group.command("lm", short_help="An autoregressive model on text, audio or images.")
@training_options("lm")
@click.option("--arch", type=click.Choice(["auto", "rnn", "frame"]), default="auto",
              help="auto: an RNN for text, the frame model for audio and images; rnn over audio "
                   "or pixels is the plain sample-level baseline.")
@click.option("--layers", "num_layers", type=click.IntRange(min=1), default=None,
              help=f"Recurrent layers [default: {default_of(RNNConfig, 'num_layers')} for text, "
                   f"{default_of(FrameConfig, 'frame_layers')} for the frame tier].")
@click.option("--tie/--no-tie", "tie_embeddings", default=None, help="Tie input embeddings and output weights (text).")
@click.option("--seq-len", type=click.IntRange(min=2), default=None,
              help=f"Tokens per training window [default: {Codec.window}; audio {AudioCodec.window}].")
@click.option("--token-hidden", type=click.IntRange(min=1), default=None,
              help=f"Frame model: units of the per-token GRU [default: audio {frame_default('audio', 'token_hidden')}, "
                   f"images {frame_default('image', 'token_hidden')}].")
@click.option("--frame", type=click.IntRange(min=1), default=None,
              help=f"Audio frame model: samples per step of the frame tier [default: {frame_default('audio', 'frame')}]; a longer "
                   "frame samples faster (bench/frame_sizes.py). Images: one row.")
@click.option("--carry", type=click.IntRange(min=0), default=0, metavar="N",
              help="Text and audio: lanes of N consecutive windows that carry the model's state from one "
                   "to the next (truncated backpropagation through time, as char-rnn and SampleRNN train), "
                   "so that it learns for the long contexts of sampling and scoring; 0: every window from "
                   "a fresh state.")
@click.option("--sample-rate", type=click.IntRange(min=1000, max=192_000), default=None,
              help=f"Audio: the model's sample rate; clips are resampled to it [default: {SAMPLE_RATE}].")
@click.option("--preemphasis", type=click.FloatRange(0, 1, max_open=True), default=None, metavar="A",
              help="Audio: model x[n] - A x[n-1] and play it back through the inverse filter, which moves "
                   "the sampler's hiss under the music (LPCNet uses 0.85); with --init, fine-tunes that "
                   "model into it [default: 0, none].")
@image_options
def train_lm_command(hidden, embed, **options):
    """Train an autoregressive model on CORPUS, whose kind is told by its files:

    \b
    text    a UTF-8 file or a folder of .txt files: an RNN LM over SentencePiece tokens
    audio   a folder of WAV/FLAC/OGG (any rate, mono or stereo): 8-bit mu-law samples
    images  a folder of PNG/GIF/BMP/JPEG: palette indices in raster order

    Audio and images use the frame model (a SampleRNN-style frame tier and a small per-token
    GRU). The tokenizer, sample rate or palette is stored in the model file.
    """
    run_training("lm", hidden_size=hidden, embed_dim=embed, **options)


def vae_setting(flag: str, field: str, kind, text: str):
    """A ``train vae`` option for a VAEConfig field, unset by default, its help naming the default
    (the image VAE's too where it differs)."""
    default = str(default_of(VAEConfig, field))
    if hasattr(ImageVAEConfig, field) and default_of(ImageVAEConfig, field) != default_of(VAEConfig, field):
        default = f"{default}; images {default_of(ImageVAEConfig, field)}"
    return click.option(flag, field, type=kind, default=None, help=f"{text} [default: {default}].")


@train_group.command("vae", short_help="A VAE on lines of text or on images.")
@training_options("vae")
@click.option("--arch", type=click.Choice(["auto", "rnn", "conv"]), default="auto",
              help="auto: the sequence VAE for text, the convolutional image VAE for images; rnn over "
                   "pixels is the raster baseline.")
@vae_setting("--latent", "latent_dim", click.IntRange(min=1), "Latent dimensions")
@vae_setting("--word-dropout", "word_dropout", click.FloatRange(0, 1),
             "Share of decoder inputs replaced by unk (Bowman et al. 2016); 1: the decoder sees none and "
             "draws everything from the code, which makes sweeps clean")
@vae_setting("--free-bits", "free_bits", click.FloatRange(min=0),
             "KL floor per latent dimension in nats (Kingma et al. 2016); 0: off")
@vae_setting("--kl-schedule", "kl_schedule", click.Choice(KL_SCHEDULES),
             "KL annealing: logistic is Bowman's, cyclical Fu et al.'s")
@vae_setting("--kl-anneal-steps", "kl_anneal_steps", click.IntRange(min=1),
             "Ramp length (linear, logistic) or cycle length (cyclical)")
@vae_setting("--kl-cycles", "kl_cycles", click.IntRange(min=1), "Cycles before the weight holds")
@vae_setting("--beta", "beta", click.FloatRange(min=0), "Final KL weight")
@vae_setting("--bow-weight", "bow_weight", click.FloatRange(min=0),
             "Weight of a bag-of-words loss on the code (Zhao et al. 2017), which makes it say what a line holds")
@vae_setting("--splice", "splice", click.FloatRange(0, 1),
             "Share of each batch made of two training lines joined where a word starts, new every step: "
             "the model learns to read and write lines it never saw, and gives back less of the lines it "
             "trained on (docs/sizing.md)")
@vae_setting("--ae-pretrain-steps", "ae_pretrain_steps", click.IntRange(min=0),
             "Train as an autoencoder first, then reset the decoder (Li et al. 2019)")
@click.option("--refit-steps", type=click.IntRange(min=0), default=None,
              help="Finally fit a proposal, a copy of the encoder, to the trained decoder on the plain "
                   "ELBO for this many steps; the likelihood (IW-NLL) is measured with it, the codes "
                   "with the encoder as trained [default: a tenth of the steps, which get nine tenths "
                   "of --minutes; 0: off].")
@image_options
def train_vae_command(hidden, embed, **options):
    """Train a VAE on CORPUS: one line per item (a text file or a folder of .txt files), read by
    a sequence VAE; or a folder of images, read by a convolutional encoder into a code from
    which a convolutional decoder draws every pixel's palette colour at once. For images
    --hidden sets the first convolution's channels and --embed a colour's embedding."""
    run_training("vae", hidden_size=hidden, embed_dim=embed, **options)


def seconds_option(default: float):
    return click.option("--seconds", type=click.FloatRange(0, 600, min_open=True), default=default,
                        help="Seconds of audio to generate (at most 600).")


def take_paths(out: Path, n: int) -> list[Path]:
    """``out`` itself for one take to a .wav; else ``take_01.wav`` ... in the folder ``out``."""
    if n == 1 and out.suffix.lower() == ".wav":
        return [out]
    folder = out.with_suffix("") if out.suffix.lower() == ".wav" else out
    return [folder / f"take_{i + 1:02d}.wav" for i in range(n)]


def write_audio_takes(waves, rate: int, out: Path, prime=None) -> list[Path]:
    """Each take as a WAV (prime + continuation when ``prime`` is given) and a PNG beside it with
    the waveform and spectrogram; ``out`` is the file for one take, a folder for several."""
    for wave, path in zip(waves, take_paths(out, len(waves))):
        full = wave if prime is None else np.concatenate([prime, wave])
        write_wav(path, full, rate)
        write_png(path.with_suffix(".png"), audio_picture(full, rate, None if prime is None else len(prime)))
    return take_paths(out, len(waves))


@main.command(short_help="Sample lines, seconds of audio or a grid of images.")
@model_option("shakespeare")
@click.option("-n", "count", type=click.IntRange(min=1, max=10_000), default=None,
              help="How many lines, audio takes or images [default: 5 lines, 1 take, 16 images].")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Audio: a .wav (a folder for several takes); images: the grid .png.")
@seconds_option(4.0)
@click.option("--prompt", default=None, help="Start every line with this text (language models).")
@click.option("--max-tokens", type=click.IntRange(min=1, max=100_000), default=200,
              help="Longest line, in tokens (language models).")
@decoding_options
@sampling_options
@device_option
def sample(model_spec, count, out, seconds, prompt, max_tokens, decode, beam, temperature, top_k, top_p,
           seed, device):
    """Sample from a model: lines of text (from a language model or a VAE's prior), seconds of
    audio, or a grid of images drawn pixel by pixel."""
    model = load(model_spec, device)
    if out is not None:
        check_output(take_paths(out, count or 1)[0] if model.kind == "audio" else out)
    drawn = model.sample(count, seconds=seconds, prompt=prompt, max_tokens=max_tokens, decode=decode, beam=beam,
                         temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, progress=True)
    if model.kind == "audio":
        for path in write_audio_takes(drawn[0], model.codec.sample_rate, out or Path("sample.wav")):
            click.echo(f"wrote {path} and {path.with_suffix('.png').name}", err=True)
    elif model.kind == "image":
        out = out or Path("samples.png")
        write_png(out, grid([np.asarray(image) for image in drawn]))
        click.echo(f"wrote {out} ({len(drawn)} images)", err=True)
    else:
        for line in drawn:
            click.echo(line)


@main.command("continue", short_help="Continue an audio clip.")
@click.argument("clip", type=click.Path(path_type=Path))
@model_option("speech")
@seconds_option(4.0)
@click.option("-n", "count", type=click.IntRange(min=1, max=64), default=1, help="Takes at once.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("continued.wav"),
              help="A .wav for one take; a folder for several.")
@click.option("--prime/--no-prime", "with_prime", default=True,
              help="Write the clip before its continuation, or the continuation alone.")
@sampling_options
@device_option
def continue_command(clip, model_spec, seconds, count, out, with_prime, temperature, top_k, top_p, seed, device):
    """Continue CLIP (any WAV, FLAC or OGG: resampled, mixed to mono) with an audio model. Each
    take is a WAV at the model's rate with a waveform and spectrogram PNG beside it, a red line
    where the clip ends."""
    check_output(take_paths(out, count)[0])
    model = load(model_spec, device)
    model.require("continue", "lm", ("audio",))
    wave = model.read_clip(clip, warn=warn)
    waves, rate = model.continue_(wave, seconds, count, temperature=temperature, top_k=top_k, top_p=top_p,
                                  seed=seed, progress=True)
    for path in write_audio_takes(waves, rate, out, wave if with_prime else None):
        click.echo(f"wrote {path} and {path.with_suffix('.png').name}", err=True)


@main.command("complete", short_help="Draw the bottom of an image from its top.")
@click.argument("image", type=click.Path(path_type=Path))
@model_option("sprites")
@click.option("-n", "count", type=click.IntRange(min=1, max=256), default=8, help="Completions.")
@click.option("--keep", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
              help="Fraction of rows kept from the top.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("completions.png"))
@sampling_options
@device_option
def complete_command(image, model_spec, count, keep, out, temperature, top_k, top_p, seed, device):
    """Keep the top --keep of IMAGE and draw N different bottoms. The PNG shows the image as the
    model sees it, the part kept, then the completions."""
    check_output(out)
    model = load(model_spec, device)
    model.require("complete", "lm", ("image",))
    original = model.as_seen(image)
    done = model.complete(original, keep, count, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                          progress=True)
    rows = model.kept_rows(keep)
    write_png(out, grid([original, hide_below(original, rows), *map(np.asarray, done)], columns=count + 2))
    click.echo(f"wrote {out}: original, kept {rows} of {model.codec.height} rows, {count} completions", err=True)


@main.command("eval", short_help="Score a held-out corpus under a model.")
@click.argument("corpus", type=click.Path(path_type=Path))
@model_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--iw-samples", type=click.IntRange(min=1), default=500,
              help="Importance samples per line for a VAE's IW-NLL.")
@click.option("--iw-fit", type=click.IntRange(min=0), default=IW_FIT_STEPS, show_default=True,
              help="Steps fitting each line's own q(z|x) before importance sampling, for a tighter IW-NLL "
                   "(0: the model's proposal as it is).")
@click.option("--seed", type=int, default=0, help="Seed for the VAE's latent samples.")
@click.option("--refine", type=click.IntRange(min=0), default=REFINE_STEPS, show_default=True,
              help="A VAE's reconstruction is also measured from codes refined this many steps (0: not).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N items.")
@click.option("--colormap", type=click.Path(path_type=Path), default=None,
              help="CORPUS is in the lecture's pixel format with this colormap.")
@device_option
def eval_command(corpus, model_spec, as_json, iw_samples, iw_fit, seed, refine, limit, colormap, device):
    """Score held-out CORPUS (of the model's kind): NLL, bits per token, perplexity, and bits per
    character (text), bits per sample (audio) or bits per dim and nats per pixel (images); for a
    VAE also IW-NLL, KL, mutual information, active units and reconstruction accuracy."""
    model = load(model_spec, device)
    metrics = model.evaluate(corpus, iw_samples=iw_samples, seed=seed, refine=refine, iw_fit=iw_fit,
                             limit=limit, colormap=colormap)
    del metrics["loss"]
    if as_json:
        click.echo(json.dumps({"model": str(model.path), "corpus": str(corpus), **metrics}))
        return
    for name, value in metrics.items():
        if isinstance(value, list):
            value = " ".join(f"{v:g}" for v in value)
        click.echo(f"{name:>20}  {value:,.4f}" if isinstance(value, float) else
                   f"{name:>20}  {value:,}" if isinstance(value, int) else f"{name:>20}  {value}")


def vae_option(f):
    return model_option("poems")(f)


@main.command("interpolate", short_help="Decode the path between two lines or images (VAE).")
@click.argument("first")
@click.argument("second")
@vae_option
@click.option("--steps", type=click.IntRange(min=2, max=1000), default=8,
              help="Points on the path, both ends included.")
@click.option("--slerp", is_flag=True, help="Walk the great circle instead of the straight line.")
@refine_option
@decoding_options
@sampling_options
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("interpolation.png"),
              help="Image VAE: the row of images (the two given ones at its ends).")
@device_option
def interpolate_command(first, second, model_spec, steps, slerp, refine, decode, beam, temperature, top_k,
                        top_p, seed, out, device):
    """Decode the latent path between two lines into a row of lines (a sentence VAE), or between
    two images (FIRST and SECOND image files) into a row of images (an image VAE)."""
    model = load(model_spec, device)
    if model.kind == "image":
        check_output(out)
        ends = [model.drawn_size(path) for path in (first, second)]
        items = model.interpolate(*ends, steps, slerp=slerp, refine=refine, decode=decode, beam=beam,
                                  temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        row = [model.as_seen(ends[0]), *(np.asarray(item) for item in items), model.as_seen(ends[1])]
        write_png(out, grid(row, columns=steps + 2))
        click.echo(f"wrote {out}: {first} (given), {steps} images on the path, {second} (given)", err=True)
        return
    pictures = [Path(arg) for arg in (first, second) if Path(arg).suffix.lower() in IMAGE_SUFFIXES]
    if len(pictures) == 2 and all(path.is_file() for path in pictures):
        raise GenseqError(f"{first} and {second} are images but {model_spec} is a VAE of lines; give two "
                          "lines, or an image VAE with -m (e.g. -m sprites-vae)")
    lines = model.interpolate(first, second, steps, slerp=slerp, refine=refine, decode=decode, beam=beam,
                              temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, warn=warn)
    click.echo(f"{'A':>5}  {first}  (given)")
    for i, line in enumerate(lines):
        click.echo(f"{i / (steps - 1):5.2f}  {line}")
    click.echo(f"{'B':>5}  {second}  (given)")


@main.command("reconstruct", short_help="Encode lines, decode them back (VAE).")
@click.argument("lines", nargs=-1, required=True)
@vae_option
@refine_option
@decoding_options
@sampling_options
@device_option
def reconstruct_command(lines, model_spec, refine, decode, beam, temperature, top_k, top_p, seed, device):
    """Encode each line to its code (the posterior mean, refined) and decode it back (a sentence VAE)."""
    decoded = load(model_spec, device).reconstruct(lines, refine=refine, decode=decode, beam=beam,
                                                    temperature=temperature, top_k=top_k, top_p=top_p,
                                                    seed=seed, warn=warn)
    for line, out in zip(lines, decoded):
        click.echo(f"{line}  ->  {out}")


def warn(message: str) -> None:
    click.echo(message, err=True)


@main.command("traverse", short_help="Sweep two code dimensions of an image VAE.")
@model_option("sprites-vae")
@click.option("--dims", default=None, metavar="A,B",
              help="The two code dimensions to sweep [default: the two that vary most on held-out images].")
@click.option("--steps", type=click.IntRange(min=2, max=25), default=9, help="Values per dimension.")
@click.option("--span", type=click.FloatRange(0, 10, min_open=True), default=2.5,
              help="Sweep each dimension over [-span, span] (prior standard deviations).")
@click.option("--from", "start_image", type=click.Path(path_type=Path), default=None,
              help="Fix the other dimensions at this image's code (its refined posterior mean) "
                   "instead of the prior's mean.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("traverse.png"))
@device_option
def traverse_command(model_spec, dims, steps, span, start_image, out, device):
    """The lecture's picture: fix every code dimension but two, sweep those two like sliders
    and decode each point (greedy). Rows sweep the first dimension, columns the second."""
    check_output(out)
    model = load(model_spec, device)
    if dims is None:
        chosen = model.busiest_dims()
    else:
        try:
            chosen = tuple(int(d) for d in dims.split(","))
        except ValueError:
            chosen = ()
        if len(chosen) != 2:
            raise GenseqError(f"--dims takes two dimensions as A,B, e.g. 3,7; got {dims!r}")
    images = model.traverse(chosen, steps, span, start_image)
    write_png(out, grid([np.asarray(image) for image in images], columns=steps))
    click.echo(f"wrote {out}: dimension {chosen[0]} down, {chosen[1]} across, {steps} values each "
               f"from {-span:g} to {span:g}", err=True)


@main.command(short_help="Show everything on the shipped models, as one page.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("demo"), help="Folder for the page.")
@click.option("--open", "open_page", is_flag=True, help="Open the page in a web browser.")
def demo(out, open_page):
    """Interpolate poem lines, continue speech and piano clips, draw, complete and sweep sprites,
    all with the shipped models, and write OUT/index.html with each result and its command."""
    import webbrowser

    from genseq.demo import run_demo

    index = run_demo(out)
    click.echo(f"wrote {index}", err=True)
    if open_page:
        webbrowser.open(index.resolve().as_uri())


@main.command("refit", short_help="Fit a trained VAE's proposal to its decoder.")
@click.argument("corpus", type=click.Path(path_type=Path))
@model_option()
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="The model file to write.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Adam steps.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=REFIT_LR, show_default=True,
              help="Adam's learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Items per step.")
@click.option("--valid", "valid_path", type=click.Path(path_type=Path), default=None,
              help="Held-out items to score the result on, stored in the file as its record.")
@click.option("--seed", type=int, default=0, help="Seed for the batches and latent samples.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@device_option
def refit_command(corpus, model_spec, out, steps, lr, batch_size, valid_path, seed, quiet, device):
    """Fit the proposal of VAE MODEL, the posterior its likelihood (ELBO, KL, IW-NLL) is measured
    with, to its decoder on CORPUS (its training lines or images): Adam on the plain ELBO with the
    rest frozen, what genseq train vae does last (--refit-steps). It goes on from the model's
    proposal, or starts one from its encoder; the codes that interpolate and reconstruct decode
    stay as they are. Use it on a VAE trained without that stage, or to fit longer."""
    model = load(model_spec, device)
    model.require("refit", "vae")
    check_output(out)
    stats = model.refit(corpus, steps=steps, lr=lr, batch_size=batch_size, seed=seed, progress=not quiet)
    valid = None if valid_path is None else model.evaluate(valid_path, iw_samples=0, refine=0)
    model.save(out, valid)
    shown = f", held-out neg_elbo {valid['neg_elbo']:.3f}, kl {valid['kl']:.3f}" if valid else ""
    click.echo(f"wrote {out}: last step rec {stats['rec']:.3f}, kl {stats['kl']:.3f}{shown}", err=True)


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
        score = {k: round(valid[k], 3) for k in ("bits_per_char", "bits_per_sample", "bits_per_dim",
                                                 "perplexity", "neg_elbo", "kl", "recon_char_accuracy",
                                                 "recon_pixel_accuracy") if k in valid}
        row = {"name": name, "task": record["task"], "kind": record["codec"]["kind"],
               "corpus": record["corpus"]["name"], "megabytes": round(path.stat().st_size / 1e6, 2),
               "held_out": score, "sampling": record.get("sampling") or {}}
        if as_json:
            click.echo(json.dumps(row))
        else:
            scores = ", ".join(f"{k} {v}" for k, v in score.items())
            own = f"; samples at{sampling_flags(record)}" if row["sampling"] else ""
            click.echo(f"{name:<12} {row['task']:<4} {row['kind']:<5} {row['corpus']:<34} "
                       f"{row['megabytes']:>4.1f} MB  held-out {scores}{own}")


@main.command("export", short_help="Write a shareable copy of a model.")
@click.argument("source", metavar="MODEL")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--precision", type=click.Choice(PRECISIONS), default="float16",
              help="How weights are stored: float16 halves the file, per-row int8 quarters it.")
@click.option("--valid", "valid_path", type=click.Path(path_type=Path), default=None,
              help="Score MODEL on this held-out corpus as training validates, and store those "
                   "scores (what genseq models shows) in place of the training run's.")
@click.option("--temperature", type=click.FloatRange(min=0), default=None,
              help="Store this as the model's own --temperature, which sampling uses unless told otherwise.")
@click.option("--top-k", type=click.IntRange(min=0), default=None,
              help="Store this as the model's own --top-k (0: every token).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Store this as the model's own --top-p.")
def export_command(source, target, precision, valid_path, temperature, top_k, top_p):
    """Write MODEL (file, run folder or name) as one shareable model file, weights only. Sampling
    settings not given keep MODEL's own."""
    valid = None if valid_path is None else load(source, "cpu").evaluate(valid_path, iw_samples=0, refine=0)
    given = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    size = export_model(source, target, precision, valid, sampling={k: v for k, v in given.items() if v is not None})
    click.echo(f"wrote {target} ({size / 1e6:.1f} MB)", err=True)
