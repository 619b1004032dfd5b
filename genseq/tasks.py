"""Tasks: what differs between training a language model and a sequence VAE on a corpus.

A task builds its model from the codec, turns the training items into batches and scores held-out
items; :func:`train` does the rest (corpus, split, tokenizer, run folder, resume) the same way
for every task. Each function here is what one CLI command does, callable from Python as well.
"""

import hashlib
import math
import os
from pathlib import Path

import torch

from genseq.codecs import Codec, TextCodec, codec_from_state, read_text_corpus
from genseq.codecs.text import BOS, EOS, choose_tokenizer
from genseq.data import ItemBatches, TokenWindows, split_holdout
from genseq.errors import GenseqError
from genseq.generate import generate
from genseq.models import RNNLM, build_model
from genseq.models.rnn import stream_nll
from genseq.models.vae import SequenceVAE
from genseq.store import CHECKPOINT_FILE, MODEL_FILE, Loaded, read_file
from genseq.train import Trainer, TrainConfig
from genseq.vae import vae_metrics

LN2 = math.log(2)


def lm_metrics(model, codec: Codec, items) -> dict:
    """Held-out NLL of ``items`` in nats and bits per token, perplexity, and bits per unit of
    whatever else the codec counts (``bits_per_char`` for text)."""
    nats, tokens = stream_nll(model, codec.encode_stream(items))
    per_token = nats / tokens
    metrics = {"loss": per_token, "nll_nats_per_token": per_token, "bits_per_token": per_token / LN2,
               "perplexity": math.exp(per_token), "tokens": tokens,
               "nll_nats_per_item": nats / len(items), "items": len(items)}
    for unit, count in codec.counts(items).items():
        metrics[f"{unit}s"] = count
        metrics[f"bits_per_{unit}"] = nats / LN2 / count
    return metrics


def fingerprint(items) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode() + b"\n")
    return digest.hexdigest()


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


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GenseqError(f"cannot create the run folder {run_dir} ({e.strerror}); choose another -o") from None
    if not os.access(run_dir, os.W_OK):
        raise GenseqError(f"cannot write to {run_dir}; choose another -o folder")


class Task:
    """What a task names: its model family (built from the codec's vocabulary and the user's
    config), how its training items become batches, and how held-out items are scored."""

    name: str
    family: str

    @classmethod
    def build(cls, codec: Codec, model_config: dict):
        return build_model(cls.family, {"vocab_size": codec.vocab_size, **model_config})


class LMTask(Task):
    """An RNN language model over the stream of all items, trained on random windows of it."""

    name, family = "lm", RNNLM.family

    @staticmethod
    def data(codec: Codec, items: list, config: TrainConfig):
        stream = codec.encode_stream(items)
        return TokenWindows(stream, config.seq_len, config.batch_size, config.seed), {"train_tokens": len(stream)}

    metrics = staticmethod(lm_metrics)


class VAETask(Task):
    """A sequence VAE over whole items (lines), trained on random padded batches of them."""

    name, family = "vae", SequenceVAE.family

    @staticmethod
    def data(codec: Codec, items: list, config: TrainConfig):
        sequences = [codec.encode(item) for item in items]
        facts = {"train_tokens": sum(len(s) + 1 for s in sequences),
                 "longest_tokens": max(len(s) for s in sequences) + 1}
        return ItemBatches(sequences, config.batch_size, config.seed, BOS, EOS), facts

    metrics = staticmethod(vae_metrics)


TASKS = {task.name: task for task in (LMTask, VAETask)}


def train(task: str, corpus, run_dir, *, model_config: dict | None = None, train_config: TrainConfig,
          valid=None, valid_fraction: float = 0.05, tokenizer: str = "auto", vocab_size: int = 2000,
          device: torch.device = torch.device("cpu"), resume: bool = False, progress: bool = True,
          stop_at: int | None = None) -> dict:
    """Train a model for ``task`` (``lm`` or ``vae``) on ``corpus`` (a text file or folder of .txt
    files) into ``run_dir``; return the final held-out metrics.

    ``valid`` names a held-out file; without it ``valid_fraction`` of the corpus is held out,
    chosen by ``train_config.seed``. ``tokenizer="auto"`` picks ``char`` for Chinese text and
    ``unigram`` otherwise. With ``resume`` the run's own codec, model and training settings are
    used, and the corpus must be the one it started on.
    """
    spec = TASKS[task]
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    items = read_text_corpus(corpus)
    if valid is not None:
        train_items, valid_items = items, read_text_corpus(valid)
    else:
        train_items, valid_items = split_holdout(items, valid_fraction, train_config.seed)
    make_run_dir(run_dir)
    corpus_sha256 = fingerprint(train_items)

    if resume:
        checkpoint = read_file(run_dir / CHECKPOINT_FILE)
        if checkpoint["task"] != task:
            raise GenseqError(f"{run_dir} holds a {checkpoint['task']} run; resume it with "
                              f"genseq train {checkpoint['task']}")
        if checkpoint["corpus"]["sha256"] != corpus_sha256:
            raise GenseqError(f"{corpus} is not the corpus this run was trained on; resume with the "
                              "same corpus and --valid settings")
        codec = codec_from_state(checkpoint["codec"])
        model = build_model(checkpoint["family"], checkpoint["config"])
        train_config = TrainConfig(**checkpoint["train"])
    else:
        torch.manual_seed(train_config.seed)
        if tokenizer == "auto":
            tokenizer = choose_tokenizer(train_items)
        codec = TextCodec.train(train_items, tokenizer, vocab_size)
        model = spec.build(codec, model_config or {})

    data, facts = spec.data(codec, train_items, train_config)
    meta = {"corpus": {"name": str(corpus), "sha256": corpus_sha256,
                       "train_items": len(train_items), "valid_items": len(valid_items), **facts}}
    trainer = Trainer(model, codec, task, data, lambda m: spec.metrics(m, codec, valid_items),
                      train_config, run_dir, device, meta=meta, progress=progress)
    if resume:
        trainer.resume()
    return trainer.fit(stop_at=stop_at)


def sample_text(loaded: Loaded, n: int = 5, prompt: str | None = None, max_tokens: int = 200,
                **sampling) -> list[str]:
    """``n`` lines from a text model, each continuing ``prompt`` if given; ``sampling`` takes
    ``temperature``, ``top_k``, ``top_p`` and ``seed`` as :func:`genseq.generate.generate` does."""
    codec = loaded.codec
    ids = generate(loaded.model, codec.prime(prompt), max_tokens, batch=n, stop_id=codec.stop_id,
                   **sampling)
    prefix = codec.encode(prompt) if prompt else []
    return [codec.decode(prefix + row) for row in ids.tolist()]
