"""Tasks: what differs between training a language model and a sequence VAE on a corpus.

A task builds its model from the codec, turns the training items into batches and scores held-out
items; :func:`train` does the rest (corpus, split, tokenizer, run folder, resume) the same way
for every task. Each function here is what one CLI command does, callable from Python as well.
"""

import hashlib
import math
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from genseq.codecs import CODECS, SAMPLE_RATE, AudioCodec, Codec, ImageCodec, TextCodec, codec_from_state, \
    corpus_kind, read_corpus
from genseq.codecs.image import PALETTE, corpus_size, read_colormap
from genseq.codecs.base import BOS, EOS
from genseq.codecs.text import VOCAB_SIZE, choose_tokenizer
from genseq.data import ImageBatches, ItemBatches, StreamLanes, TokenWindows, split_holdout
from genseq import distributed
from genseq.errors import GenseqError
from genseq.generate import generate
from genseq.models import FrameLM, ImageVAE, RNNLM, build_model
from genseq.models.vae import SequenceVAE
from genseq.sizing import choose
from genseq.media import grid, write_png, write_wav
from genseq.store import CHECKPOINT_FILE, MODEL_FILE, Loaded, atomic_path, build_from, read_file, read_model, \
    writable_folder
from genseq.train import Trainer, TrainConfig, mixed_precision, terminate_as_interrupt
from genseq.vae import (decode_latents, interpolate, line_codes, recon_accuracy, reconstruct, fit_proposal,
                        vae_metrics)

LN2 = math.log(2)


def lm_metrics(model, codec: Codec, items) -> dict:
    """Held-out NLL of ``items`` in nats and bits per token, perplexity, and bits per unit of
    whatever else the codec counts (``bits_per_char`` for text): ``bits_per_sample`` for audio,
    ``bits_per_dim`` and ``nats_per_pixel`` for images (one palette index per pixel)."""
    stream = codec.encode_stream(items)
    nats, tokens = model.stream_nll(stream)
    per_token = nats / tokens
    metrics = {"loss": per_token, "nll_nats_per_token": per_token, "bits_per_token": per_token / LN2,
               "perplexity": math.exp(per_token), "tokens": tokens,
               "nll_nats_per_item": nats / len(items), "items": len(items),
               **codec.unit_metrics(nats, items)}
    return metrics


def fingerprint(items) -> str:
    """A digest of the training items (lines, clips or images), to check a resumed corpus."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode() if isinstance(item, str) else item.tobytes())
        digest.update(b"\n")
    return digest.hexdigest()


# The frame model's shape for each kind of data; the user's --hidden, --embed, --layers and
# --dropout override these. Images get one frame per row and the pixels above as lags.
FRAME_DEFAULTS = {
    "audio": dict(frame=16, embed_dim=16, frame_hidden=384, token_hidden=64, head_hidden=128, lags=[1, 2]),
    "image": dict(embed_dim=16, frame_hidden=512, token_hidden=128, head_hidden=256, dropout=0.2),
}


def frame_config(codec: Codec, options: dict) -> dict:
    """FrameLM settings for an audio or image codec from the CLI's model options."""
    config = dict(FRAME_DEFAULTS[codec.kind])
    if codec.kind == "image":
        w = codec.width
        config.update(frame=w, rows=codec.height, lags=[1, 2, w - 1, w, w + 1])
    renamed = {"hidden_size": "frame_hidden", "num_layers": "frame_layers"}
    for key, value in options.items():
        if value is not None and key not in ("cell", "tie_embeddings"):
            config[renamed.get(key, key)] = value
    return config


def lm_arch(kind: str, arch: str | None) -> str:
    """The architecture of a language model of ``kind`` data: ``rnn`` or ``frame``. ``auto`` (or
    None) is an RNN for text and the frame model for audio and images."""
    if arch in (None, "auto"):
        return "rnn" if kind == "text" else "frame"
    if arch == "frame" and kind == "text":
        raise GenseqError("the frame model is for audio and images; train text with --arch rnn")
    return arch


SEQUENCE_ONLY = ("word_dropout", "bow_weight", "cell")  # settings the image VAE has no use for


def vae_arch(kind: str, arch: str | None) -> str:
    """The architecture of a VAE of ``kind`` data: ``rnn`` (the sequence VAE) or ``conv`` (the
    image VAE). ``auto`` (or None) is the sequence VAE for text and the image VAE for images."""
    if arch in (None, "auto"):
        return "rnn" if kind == "text" else "conv"
    if arch == "conv" and kind != "image":
        raise GenseqError("the convolutional VAE is for images; train text with --arch rnn")
    return arch


def check_model_options(task: str, kind: str, model_config: dict) -> None:
    """Refuse, before any work, an architecture or frame-model options that the model to be
    trained has no use for."""
    if model_config.get("splice") and kind != "text":
        raise GenseqError("--splice joins lines of text where a word starts, and this corpus is not text; drop it")
    if task == "vae" and vae_arch(kind, model_config.get("arch")) == "conv":
        for key in SEQUENCE_ONLY:
            if model_config.get(key) is not None:
                raise GenseqError(f"--{key.replace('_', '-')} is for the sequence VAE; the convolutional image "
                                  "VAE draws every pixel from the code at once: drop it (or give --arch rnn)")
    frame_model = task == "lm" and lm_arch(kind, model_config.get("arch")) == "frame"
    for key in ("frame", "token_hidden"):
        if model_config.get(key) is None:
            continue
        option = "--" + key.replace("_", "-")
        if not frame_model:
            raise GenseqError(f"{option} shapes the frame model of audio and images, which this run "
                              "does not train; drop it")
        if key == "frame" and kind == "image":
            raise GenseqError("--frame is for audio: an image model's frame is one row of pixels")


def fit_codec(kind: str, items: list, options: dict, offset: int = 0) -> Codec:
    """A new codec for training ``items``: a SentencePiece model for text, the sample rate for
    audio, a k-means palette (or the lecture's colormap) for images, its ids from ``offset`` on.
    Images are drawn at ``options["size"]``, by default their own (:func:`corpus_size`)."""
    if kind == "text":
        tokenizer = options.get("tokenizer", "auto")
        if tokenizer == "auto":
            tokenizer = choose_tokenizer(items)
        return TextCodec.train(items, tokenizer, options.get("vocab_size") or VOCAB_SIZE)
    if kind == "audio":
        return AudioCodec(options.get("sample_rate") or SAMPLE_RATE, preemphasis=options.get("preemphasis") or 0.0)
    if options.get("colormap") is not None:  # the lecture's images keep their size and colours
        height, width = items[0].shape[:2]
        return ImageCodec.from_palette(read_colormap(options["colormap"]), height, width, offset)
    height, width = corpus_size(items, options.get("size"))
    return ImageCodec.fit(items, options.get("palette") or PALETTE, height, width, offset=offset)


def choose_settings(spec, kind: str, train_items, device: torch.device, model_config: dict,
                    codec_options: dict, train_config: TrainConfig):
    """Fill the settings left unset (None) by :func:`genseq.sizing.choose`, then the batch size,
    learning rate and precision by the task's defaults; returns the three setting groups and what
    was chosen (``settings`` and the ``reason`` line; empty when nothing was). ``train_items``:
    the training split, which the rules read by count and, for text, by size."""
    train_keys = {"batch_size", "lr", "seq_len", "precision"}
    given = {**model_config, **codec_options, **{key: getattr(train_config, key) for key in train_keys}}
    settings, reason = choose(spec.name, kind, len(train_items), device, given, model_config.get("arch") or "auto",
                              text_bytes=train_items.nbytes if kind == "text" else None)
    model_config = {**model_config, **{k: v for k, v in settings.items() if k not in train_keys and k != "vocab_size"}}
    codec_options = {**codec_options, **{k: v for k, v in settings.items() if k == "vocab_size"}}
    train = {k: settings.get(k, getattr(train_config, k)) for k in train_keys}
    defaults = {"precision": "float32", **spec.train_defaults}
    train = {k: defaults.get(k) if v is None else v for k, v in train.items()}
    if train["batch_size"] % distributed.world()[1]:
        raise GenseqError(f"--batch-size {train['batch_size']} does not split over {distributed.world()[1]} "
                          "processes; give a multiple of it")
    return model_config, codec_options, replace(train_config, **train), \
        ({"settings": settings, "reason": reason} if settings else {})


FLAGS = {"hidden_size": "hidden", "embed_dim": "embed", "num_layers": "layers", "tie_embeddings": "tie",
         "latent_dim": "latent"}  # model settings whose command-line flag has another name


def check_carry(config: TrainConfig, model) -> None:
    """Refuse a ``--carry`` that the model cannot carry: only the windows of a stream (text, or
    audio in whole frames) continue one another."""
    if not config.carry:
        return
    if not isinstance(model, (FrameLM, RNNLM)) or getattr(model.config, "rows", 0):
        raise GenseqError("--carry is for language models of text or audio, whose windows follow one another; "
                          "drop it")
    if isinstance(model, FrameLM) and config.seq_len % model.frame:
        raise GenseqError(f"--carry needs a --seq-len of whole frames: {config.seq_len} is not a multiple of "
                          f"--frame {model.frame}")


# settings a fine-tune may change: they shape the training, not the weights (a VAE's objective)
RETRAINABLE = ("dropout", "word_dropout", "free_bits", "kl_schedule", "kl_anneal_steps", "kl_cycles", "beta",
               "splice")


def start_from(init, task: str, kind: str, model_config: dict, codec_options: dict) -> dict:
    """The model file that ``--init`` names, checked against this run before any work: the same
    task and kind of data, and no option that would change its shape or its codec. Its
    ``config`` takes the given settings of :data:`RETRAINABLE` that it holds (dropout, a VAE's
    word dropout, free bits, KL schedule, beta, splicing); ``sha256`` digests the file."""
    path, record = read_model(str(init))
    if record["task"] != task:
        raise GenseqError(f"{init} is a {record['task']} model; start a {task} run from a {task} model, "
                          f"or train it with genseq train {record['task']}")
    if record["codec"].get("kind") != kind:
        raise GenseqError(f"{init} models {record['codec'].get('kind')}, and this corpus is {kind}; "
                          "start from a model of the same kind of data")
    given = {key: value for key, value in model_config.items() if value is not None}
    retrained = {key: value for key, value in given.items() if key in RETRAINABLE and key in record["config"]}
    fixed = [key for key, value in {**given, **codec_options}.items()
             if value is not None and key not in (*retrained, "tokenizer", "arch", "colormap", "preemphasis")]
    if codec_options.get("tokenizer") not in (None, "auto"):
        fixed.append("tokenizer")
    if fixed:
        flags = ", ".join("--" + FLAGS.get(key, key).replace("_", "-") for key in fixed)
        raise GenseqError(f"{flags}: the model's shape and codec come from --init {init}; drop them "
                          "(or train a new model without --init)")
    record = {**record, "config": {**record["config"], **retrained}}
    if codec_options.get("preemphasis") is not None:  # fine-tuned into the pre-emphasised signal
        record = {**record, "codec": {**record["codec"], "preemphasis": codec_options["preemphasis"]}}
    return {**record, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse, before any work, a run folder whose files a new run would overwrite."""
    if resume:
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise GenseqError(f"{run_dir} holds no {CHECKPOINT_FILE} to resume from; drop --resume "
                              "to start a new run")
        return
    for name in (MODEL_FILE, CHECKPOINT_FILE):
        if (run_dir / name).exists():
            raise GenseqError(f"{run_dir} already holds {name}; continue it with --resume or "
                              "choose another -o folder")


class Task:
    """What a task names: the kinds of corpus it takes, how its model is built from the codec's
    vocabulary and the user's config, how its training items become batches, how held-out items
    are scored, the batch size and peak learning rate it trains with unless told otherwise, and
    its stages around the one training loop (:meth:`plan` before it, :meth:`finish` after it)."""

    name: str
    train_defaults: dict
    kinds = ("text", "audio", "image")

    @classmethod
    def check_corpus(cls, corpus, kind: str) -> None:
        if kind not in cls.kinds:
            named = {"text": "lines of text", "audio": "audio", "image": "images"}
            raise GenseqError(f"{corpus} holds {kind}; genseq train {cls.name} takes "
                              f"{' or '.join(named[k] for k in cls.kinds)}, use genseq train lm for {named[kind]}")

    @staticmethod
    def plan(train_config: TrainConfig, meta: dict, checkpoint: dict | None, stage_steps: int | None) -> TrainConfig:
        """The training loop's settings, given the stages after it; ``meta`` (stored in the model
        file) records what the stages need. ``checkpoint``: the run's, when it resumes."""
        return train_config

    @staticmethod
    def finish(trainer: Trainer, data) -> dict | None:
        """Stages after the training loop; their held-out metrics, or None if there are none."""
        return None

    @staticmethod
    def before_step(model, step: int) -> None:
        """Changes to the model on a schedule, before step ``step``'s loss."""

    @staticmethod
    def feedback(loaded: Loaded, valid_items: list, step: int) -> list[str]:
        """What the model makes of things at ``step``, written to ``RUN/samples/`` (the folder of
        ``loaded.path``): lines to show the user."""
        return []

    @staticmethod
    def summary(loaded: Loaded, data, train_items: list, valid_items: list, metrics: dict) -> dict:
        """Figures that put the final held-out ``metrics`` in context: baselines on the same
        held-out items, and what to try next."""
        return {}


class LMTask(Task):
    """An autoregressive model over the stream of all items: an RNN LM on text, trained on random
    windows; the frame model on audio (random windows) and images (whole images, mirrored)."""

    name = "lm"
    id_offset = 0
    train_defaults = dict(batch_size=32, lr=3e-3)

    @classmethod
    def build(cls, codec: Codec, model_config: dict):
        """``arch``: ``auto`` (an RNN LM for text, the frame model for audio and images), ``rnn``
        (a plain RNN over the tokens: the sample-level and raster baselines) or ``frame``."""
        model_config = dict(model_config)
        if lm_arch(codec.kind, model_config.pop("arch", None)) == "rnn":
            config = {k: v for k, v in model_config.items() if v is not None}
            return build_model(RNNLM.family, {"vocab_size": codec.vocab_size, **config})
        return build_model(FrameLM.family, {"vocab_size": codec.vocab_size, **frame_config(codec, model_config)})

    @staticmethod
    def data(codec: Codec, items: list, config: TrainConfig, model=None):
        stream = codec.encode_stream(items)
        facts = {"train_tokens": len(stream)}
        if codec.kind == "image":
            return ImageBatches(stream, codec.height, codec.width, config.batch_size, config.seed), facts
        if config.carry:
            return StreamLanes(stream, config.seq_len, config.batch_size, config.seed, config.carry), facts
        return TokenWindows(stream, config.seq_len, config.batch_size, config.seed), facts

    metrics = staticmethod(lm_metrics)

    @staticmethod
    def feedback(loaded: Loaded, valid_items: list, step: int) -> list[str]:
        """Two lines of text, half a second of audio or eight images, drawn with seed ``step``."""
        kind, path = loaded.codec.kind, samples_path(loaded, step)
        if kind == "text":
            lines = sample_text(loaded, 2, max_tokens=80, seed=step)
            write_text(path.with_suffix(".txt"), lines)
            return [f"step {step} samples:", *(f"  {line}" for line in lines)]
        if kind == "audio":
            wave = continue_audio(loaded, None, 0.5, 1, seed=step)[0]
            write_wav(path.with_suffix(".wav"), wave, loaded.codec.sample_rate)
            return [f"step {step}: half a second drawn from silence in {path.with_suffix('.wav')}"]
        write_png(path.with_suffix(".png"), grid(sample_images(loaded, 8, seed=step, workers=1), columns=8))
        return [f"step {step}: eight images drawn in {path.with_suffix('.png')}"]

    @staticmethod
    def summary(loaded: Loaded, data, train_items: list, valid_items: list, metrics: dict) -> dict:
        """The held-out cost under the training tokens' unigram (add-one), in the codec's units:
        what a model that learned no context would score."""
        codec = loaded.codec
        counts = data.token_counts(codec.vocab_size).double() + 1
        log_p = (counts / counts.sum()).log()
        stream = codec.encode_stream(valid_items).long()
        if codec.kind == "image":
            stream = stream[stream != codec.start_id]
        nats = -log_p[stream[1:]].sum().item()
        return {f"unigram_{k}": v for k, v in codec.unit_metrics(nats, valid_items).items() if k.startswith(("bits", "nats"))}


class VAETask(Task):
    """A sequence VAE over whole items (lines), trained on random padded batches of them."""

    name = "vae"
    id_offset = 4  # an image codec's ids start after the VAE's pad, unk, bos and eos
    train_defaults = dict(batch_size=64, lr=1e-3)
    kinds = ("text", "image")

    @staticmethod
    def plan(train_config: TrainConfig, meta: dict, checkpoint: dict | None, stage_steps: int | None) -> TrainConfig:
        """The encoder refit (:func:`refit_stage`) gets ``stage_steps`` steps (None: a tenth of the
        training steps, and a tenth of a ``minutes`` budget; 0: none). A resumed run keeps its own
        setting, and a refit it finished."""
        if checkpoint is not None:
            stage_steps = checkpoint.get("refit_steps")
            if "refit" in checkpoint:
                meta["refit"] = checkpoint["refit"]
        elif train_config.minutes and stage_steps != 0:  # keep time for the refit
            train_config = replace(train_config, minutes=train_config.minutes * 0.9)
        meta["refit_steps"] = stage_steps
        return train_config

    @staticmethod
    def before_step(model, step: int) -> None:
        """Autoencoder pretraining (Li et al. 2019) ends by resetting the decoder."""
        if step == model.config.ae_pretrain_steps > 0:
            model.reset_decoder(seed=step)

    @staticmethod
    def finish(trainer: Trainer, data) -> dict | None:
        if not trainer.main or trainer.step < trainer.total or "refit" in trainer.meta:
            return None
        steps = trainer.meta["refit_steps"]
        steps = max(1, trainer.total // 10) if steps is None else steps
        return refit_stage(trainer, data, steps) if steps else None

    @staticmethod
    def build(codec: Codec, model_config: dict):
        """``arch``: ``auto`` (the sequence VAE for text, the convolutional one for images),
        ``rnn`` (the sequence VAE, on images a raster of pixels) or ``conv`` (images)."""
        config = {k: v for k, v in model_config.items() if v is not None}  # None: the default
        if vae_arch(codec.kind, config.pop("arch", None)) == "rnn":
            return build_model(SequenceVAE.family, {"vocab_size": codec.vocab_size, **config})
        config = {("channels" if k == "hidden_size" else k): v for k, v in config.items()}
        return build_model(ImageVAE.family, {"vocab_size": codec.vocab_size, "height": codec.height,
                                             "width": codec.width, "offset": codec.offset,
                                             "classes": codec.start_id - codec.offset, **config})

    max_line_tokens = 256  # a sentence VAE reads lines, not paragraphs

    @classmethod
    def data(cls, codec: Codec, items: list, config: TrainConfig, model=None):
        """Whole items; for text, spliced as ``model``'s config asks (:class:`ItemBatches`)."""
        sequences = [codec.encode(item) for item in items]
        longest = max(range(len(sequences)), key=lambda i: len(sequences[i]))
        if codec.kind == "text" and len(sequences[longest]) > cls.max_line_tokens:
            raise GenseqError(f"a line of the corpus is {len(sequences[longest])} tokens long ({items[longest][:40]!r}...), "
                              f"more than the {cls.max_line_tokens} a sentence VAE reads; split long lines (one "
                              "sentence per line), or train a language model with genseq train lm")
        facts = {"train_tokens": sum(len(s) + 1 for s in sequences),
                 "longest_tokens": len(sequences[longest]) + 1}
        flip = codec.width if codec.kind == "image" else None  # a mirrored sprite is a sprite
        splice = getattr(getattr(model, "config", None), "splice", 0.0)
        starts = codec.word_starts() if splice else None
        return ItemBatches(sequences, config.batch_size, config.seed, BOS, EOS, flip, splice, starts), facts

    metrics = staticmethod(vae_metrics)

    @staticmethod
    def feedback(loaded: Loaded, valid_items: list, step: int) -> list[str]:
        """A held-out item reconstructed from its posterior mean and, for text, the path between
        two held-out lines at three points."""
        codec, path = loaded.codec, samples_path(loaded, step)
        if codec.kind == "image":
            shown = valid_items[:4]
            codes = line_codes(loaded.model, codec, shown)
            images = decode_latents(loaded.model, codec, codes, max_tokens=codec.pixels + 1)
            seen = [codec.decode(codec.encode(item)) for item in shown]  # at the model's size, in its palette
            write_png(path.with_suffix(".png"), grid([*seen, *images], columns=len(shown)))
            return [f"step {step}: held-out images over their reconstructions in {path.with_suffix('.png')}"]
        a, b = valid_items[0], valid_items[min(1, len(valid_items) - 1)]
        quiet = dict(warn=lambda message: None, refine=0)
        back = reconstruct(loaded, [a], **quiet)[0]
        between = [line for _, line in interpolate(loaded, a, b, 3, **quiet)]
        lines = [f"step {step}: {a}  ->  {back}", f"  {a}  =>  {'  |  '.join(between)}  =>  {b}"]
        write_text(path.with_suffix(".txt"), lines)
        return lines

    @staticmethod
    def summary(loaded: Loaded, data, train_items: list, valid_items: list, metrics: dict) -> dict:
        """Reconstruction of training items (up to 200) beside the held-out figure, and the
        command to try the model on two held-out lines."""
        shown = train_items[:200]
        codes = line_codes(loaded.model, loaded.codec, shown)
        longest = max(len(loaded.codec.encode(item)) for item in shown) + 8
        train = recon_accuracy(loaded.codec, shown, decode_latents(loaded.model, loaded.codec, codes, max_tokens=longest))
        run = loaded.path.parent
        if loaded.codec.kind == "image":
            command = f"genseq traverse -m {run} -o traverse.png"
        else:
            a, b = valid_items[0], valid_items[min(1, len(valid_items) - 1)]
            command = f"genseq interpolate {shlex.quote(a)} {shlex.quote(b)} -m {run}"
        return {f"train_{name}": value for name, value in train.items()} | {"try": command}


TASKS = {task.name: task for task in (LMTask, VAETask)}


def train(task: str, corpus, run_dir, *, model_config: dict | None = None, train_config: TrainConfig,
          valid=None, valid_fraction: float = 0.05, codec_options: dict | None = None,
          device: torch.device = torch.device("cpu"), resume: bool = False, progress: bool = True,
          stop_at: int | None = None, refit_steps: int | None = None, init=None) -> dict:
    """Train a model for ``task`` (``lm`` or ``vae``) on ``corpus`` into ``run_dir``; return the
    final held-out metrics. ``corpus`` is a text file or a folder of .txt files, a folder of
    audio files, a folder of images, or the lecture's pixel file with ``codec_options["colormap"]``.

    ``valid`` names a held-out file or folder; without it ``valid_fraction`` of the corpus is held
    out, chosen by ``train_config.seed``. ``codec_options``: ``tokenizer`` (``auto`` picks
    ``char`` for Chinese text), ``vocab_size``; ``sample_rate``; ``palette`` (colours), ``size``
    ((height, width)), ``colormap``. With ``resume`` the run's own codec, model and training
    settings are used, and the corpus must be the one it started on. A VAE ends with
    ``refit_steps`` steps that refit its encoder (:func:`refit_stage`; None: a tenth of the
    training steps, which then get nine tenths of a ``minutes`` budget; 0: none). ``init`` (a
    model file, run folder or shipped model name) starts from that model's weights, codec and
    settings instead of new ones (fine-tuning); the training settings are this run's.
    """
    spec = TASKS[task]
    run_dir = Path(run_dir)
    rank, size = distributed.world()
    if train_config.batch_size is not None and train_config.batch_size % size:
        raise GenseqError(f"--batch-size {train_config.batch_size} does not split over {size} processes; "
                          f"give a multiple of {size}")
    device = distributed.setup(device)  # under torchrun: join the group, take this rank's GPU
    mixed_precision(train_config.precision, device)  # refuse an impossible --precision up front
    codec_options = codec_options or {}
    check_run_dir(run_dir, resume)
    colormap = codec_options.get("colormap")
    kind = corpus_kind(corpus, colormap)
    check_model_options(task, kind, model_config or {})
    if codec_options.get("preemphasis") is not None and kind != "audio":
        raise GenseqError(f"--preemphasis filters audio, and this corpus is {kind}; drop it")
    spec.check_corpus(corpus, kind)
    sample_rate = codec_options.get("sample_rate") or SAMPLE_RATE
    checkpoint = read_file(run_dir / CHECKPOINT_FILE) if resume else None
    start = start_from(init, task, kind, model_config or {}, codec_options) if init and not resume else None
    for record in (checkpoint, start):
        if record is not None:
            sample_rate = record["codec"].get("sample_rate", sample_rate)
    items = read_corpus(corpus, kind, sample_rate=sample_rate, colormap=colormap)
    if valid is not None:
        train_items = items
        valid_items = read_corpus(valid, corpus_kind(valid, colormap), sample_rate=sample_rate, colormap=colormap)
    else:
        train_items, valid_items = split_holdout(items, valid_fraction, train_config.seed)
    writable_folder(run_dir, f"create the run folder {run_dir}")
    corpus_sha256 = fingerprint(train_items)
    chosen = {}
    if checkpoint is None:  # settings left unset: sized for this corpus, device and budget
        model_config, codec_options, train_config, chosen = choose_settings(
            spec, kind, train_items, device, dict(model_config or {}), codec_options, train_config)
        if start is not None:  # the model and its codec are the initial model's; sizing sets the rest
            chosen = {}
        if chosen and rank == 0:
            print(chosen["reason"], file=sys.stderr)
    if train_config.seq_len is None:
        train_config = replace(train_config, seq_len=CODECS[kind].window)

    if checkpoint is not None:
        if checkpoint["task"] != task:
            raise GenseqError(f"{run_dir} holds a {checkpoint['task']} run; resume it with "
                              f"genseq train {checkpoint['task']}")
        if checkpoint["corpus"]["sha256"] != corpus_sha256:
            raise GenseqError(f"{corpus} is not the corpus this run was trained on; resume with the "
                              "same corpus and --valid settings")
        codec = codec_from_state(checkpoint["codec"])
        model = build_model(checkpoint["family"], checkpoint["config"])
        train_config = TrainConfig(**checkpoint["train"])
    elif start is not None:
        codec, model = codec_from_state(start["codec"]), build_from(start)
        if getattr(model, "proposal", None) is not None:  # fitted to the decoder this run changes
            model.drop_proposal()
    else:
        torch.manual_seed(train_config.seed)
        codec = fit_codec(kind, train_items, codec_options, offset=spec.id_offset)
        codec = codec_from_state(distributed.broadcast_object(codec.state_dict()))  # rank 0's, on all
        model = spec.build(codec, model_config or {})

    check_carry(train_config, model)
    torch.manual_seed(train_config.seed + rank)  # dropout differs by rank; DDP copies rank 0's weights
    # each rank draws its own share of the global batch
    data, facts = spec.data(codec, train_items, replace(train_config, batch_size=train_config.batch_size // size), model)
    meta = {"corpus": {"name": str(corpus), "sha256": corpus_sha256,
                       "train_items": len(train_items), "valid_items": len(valid_items), **facts}}
    if chosen:
        meta["chosen"] = chosen
    if start is not None:
        meta["init"] = {"model": str(init), "sha256": start["sha256"]}
    elif checkpoint is not None and "init" in checkpoint:
        meta["init"] = checkpoint["init"]
    train_config = spec.plan(train_config, meta, checkpoint, refit_steps)
    loaded = Loaded(model, codec, {"task": task, **meta}, run_dir / MODEL_FILE)  # the model as it trains
    trainer = Trainer(model, codec, task, data, lambda m: spec.metrics(m, codec, valid_items),
                      train_config, run_dir, device, meta=meta, progress=progress,
                      before_step=lambda step: spec.before_step(model, step),
                      feedback=lambda m, step: spec.feedback(loaded, valid_items, step))
    if resume:
        trainer.resume()
    metrics = trainer.fit(stop_at=stop_at)
    metrics = spec.finish(trainer, data) or metrics
    if metrics is None or stop_at is not None:
        return metrics
    model.eval()
    with trainer.averaged():
        return {**metrics, "summary": spec.summary(loaded, data, train_items, valid_items, metrics)}


def refit_stage(trainer: Trainer, data, steps: int) -> dict:
    """The VAE's last stage: a proposal fitted to the trained decoder (:func:`fit_proposal`),
    validated and saved; an interruption before the end leaves the trained model and checkpoint,
    and ``--resume`` runs the stage again."""
    trainer.adopt_average()  # refit the averaged weights, which are what the run ships
    try:
        with terminate_as_interrupt():
            trainer.meta["refit"] = fit_proposal(trainer.model, data, steps, start=trainer.total,
                                                 progress=trainer.progress)
    except KeyboardInterrupt:
        raise GenseqError(f"interrupted while fitting the proposal; {trainer.run_dir} keeps the trained model "
                          "and its checkpoint, and --resume fits it again") from None
    trainer.log(split="refit", **trainer.meta["refit"])
    trainer.restart_average()
    metrics = trainer.validate_now()
    trainer.save()
    return metrics


SAMPLES_DIR = "samples"


def samples_path(loaded: Loaded, step: int) -> Path:
    """``RUN/samples/step-000250`` (the caller adds the suffix)."""
    return loaded.path.parent / SAMPLES_DIR / f"step-{step:06d}"


def write_text(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def sample_text(loaded: Loaded, n: int = 5, prompt: str | None = None, max_tokens: int = 200,
                **sampling) -> list[str]:
    """``n`` lines from a text model, each continuing ``prompt`` if given; ``sampling`` takes
    ``temperature``, ``top_k``, ``top_p`` and ``seed`` as :func:`genseq.generate.generate` does."""
    codec = loaded.codec
    ids = generate(loaded.model, codec.prime(prompt), max_tokens, batch=n, stop_id=codec.stop_id,
                   **sampling)
    prefix = codec.encode(prompt) if prompt else []
    return [codec.decode(prefix + row) for row in ids.tolist()]


def token_bar(total: int, desc: str, unit: str, enabled: bool = True):
    """A progress bar for generation and the ``progress`` callable that feeds it."""
    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled,
               dynamic_ncols=True, leave=False)
    last = [0]

    def progress(done: int) -> None:
        bar.update(done - last[0])
        last[0] = done
    return bar, progress


def continue_audio(loaded: Loaded, clip: np.ndarray | None, seconds: float, n: int = 1,
                   temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   seed: int | None = None, progress: bool = False) -> list[np.ndarray]:
    """``n`` continuations of ``clip`` (float32 mono at the model's rate; None: from silence),
    each ``seconds`` long, without the clip. The clip is primed in one parallel call."""
    codec = loaded.codec
    steps = max(1, round(seconds * codec.sample_rate))
    prime = codec.prime(clip)
    reading, read = token_bar(len(prime), "prime", "sample", progress and len(prime) > codec.sample_rate)
    bar, tick = token_bar(steps * n, "continue" if clip is not None else "sample", "sample", progress)
    with reading, bar:
        ids = generate(loaded.model, prime, steps, batch=n, temperature=temperature, top_k=top_k, top_p=top_p,
                       seed=seed, progress=lambda done: tick(done * n), prime_progress=read)
    before = float(np.clip(clip[-1], -1, 1)) if clip is not None and len(clip) else 0.0  # where de-emphasis starts
    return [codec.decode(row, before) for row in ids]


def sample_images(loaded: Loaded, n: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                  seed: int | None = None, keep: np.ndarray | None = None,
                  progress: bool = False, workers: int | None = None) -> list[np.ndarray]:
    """``n`` images drawn pixel by pixel; with ``keep`` (a list of pixel ids: the top rows of an
    image) every image starts with those pixels and the model draws the rest. ``workers``: the
    processes that share the images (default: one per CPU core)."""
    codec = loaded.codec
    kept = [] if keep is None else [int(i) for i in keep]
    steps = codec.pixels - len(kept)
    bar, tick = token_bar(steps * n, "draw", "px", progress)
    with bar:
        ids = generate(loaded.model, codec.prime(kept), steps, batch=n, temperature=temperature,
                       top_k=top_k, top_p=top_p, seed=seed, progress=lambda done: tick(done * n), workers=workers)
    return [codec.decode(kept + row) for row in ids.tolist()]


def kept_rows(codec: Codec, keep: float) -> int:
    """The rows of an image that a completion keeping its top ``keep`` fraction is given."""
    rows = round(keep * codec.height)
    if not 0 < rows < codec.height:
        raise GenseqError(f"--keep {keep} keeps {rows} of {codec.height} rows; keep between one row "
                          "and all but one (e.g. --keep 0.5)")
    return rows


def complete_image(loaded: Loaded, image: np.ndarray, keep: float, n: int, **sampling) -> list:
    """``n`` completions of ``image`` from its top ``keep`` fraction of rows (:func:`kept_rows`)."""
    codec = loaded.codec
    ids = codec.encode(image)[:kept_rows(codec, keep) * codec.width]
    return sample_images(loaded, n, keep=ids, **sampling)
