"""The language-model task: train on a corpus, score held-out data, sample.

Each function here is what one CLI command does, callable from Python as well.
"""

import hashlib
import math
import os
from pathlib import Path

import torch

from genseq.codecs import Codec, TextCodec, read_text_corpus
from genseq.data import TokenWindows, split_holdout
from genseq.errors import GenseqError
from genseq.generate import generate
from genseq.models import RNNConfig, RNNLM, build_model
from genseq.models.rnn import stream_nll
from genseq.store import CHECKPOINT_FILE, MODEL_FILE, Loaded, read_file
from genseq.train import LN2, Trainer, TrainConfig

TASK = "lm"


def lm_metrics(model, codec: Codec, items) -> dict:
    """Held-out NLL of ``items`` in nats and bits per token, perplexity, and bits per unit of
    whatever else the codec counts (``bits_per_char`` for text)."""
    nats, tokens = stream_nll(model, codec.encode_stream(items))
    per_token = nats / tokens
    metrics = {"loss": per_token, "nll_nats_per_token": per_token, "bits_per_token": per_token / LN2,
               "perplexity": math.exp(per_token), "tokens": tokens}
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
    """Refuse, before any work, a run folder that would be overwritten or cannot be written."""
    if resume:
        if not (run_dir / CHECKPOINT_FILE).is_file():
            raise GenseqError(f"{run_dir} holds no {CHECKPOINT_FILE} to resume from; drop --resume "
                              "to start a new run")
        return
    for name in (MODEL_FILE, CHECKPOINT_FILE):
        if (run_dir / name).exists():
            raise GenseqError(f"{run_dir} already holds {name}; continue it with --resume or "
                              "choose another -o folder")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GenseqError(f"cannot create the run folder {run_dir} ({e.strerror}); choose another -o") from None
    if not os.access(run_dir, os.W_OK):
        raise GenseqError(f"cannot write to {run_dir}; choose another -o folder")


def train_lm(corpus, run_dir, *, model_config: dict | None = None, train_config: TrainConfig,
             valid=None, valid_fraction: float = 0.05, tokenizer: str = "unigram",
             vocab_size: int = 2000, device: torch.device = torch.device("cpu"), resume: bool = False,
             progress: bool = True, stop_at: int | None = None) -> dict:
    """Train an RNN language model on ``corpus`` (a text file or folder of .txt files) into
    ``run_dir``; return the final held-out metrics.

    ``valid`` names a held-out file; without it ``valid_fraction`` of the corpus is held out,
    chosen by ``train_config.seed``. With ``resume`` the run's own codec, model and training
    settings are used, and the corpus must be the one it started on.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir, resume)
    items = read_text_corpus(corpus)
    if valid is not None:
        train_items, valid_items = items, read_text_corpus(valid)
    else:
        train_items, valid_items = split_holdout(items, valid_fraction, train_config.seed)

    if resume:
        checkpoint = read_file(run_dir / CHECKPOINT_FILE)
        if checkpoint["corpus"]["sha256"] != fingerprint(train_items):
            raise GenseqError(f"{corpus} is not the corpus this run was trained on; resume with the "
                              "same corpus and --valid settings")
        codec = TextCodec.from_state(checkpoint["codec"])
        model = build_model(checkpoint["family"], checkpoint["config"])
        train_config = TrainConfig(**checkpoint["train"])
    else:
        torch.manual_seed(train_config.seed)
        codec = TextCodec.train(train_items, tokenizer, vocab_size)
        model = RNNLM(RNNConfig(vocab_size=codec.vocab_size, **(model_config or {})))

    train_stream = codec.encode_stream(train_items)
    data = TokenWindows(train_stream, train_config.seq_len, train_config.batch_size, train_config.seed)
    train_config.seq_len = data.seq_len
    meta = {"corpus": {"name": Path(corpus).name, "sha256": fingerprint(train_items),
                       "train_items": len(train_items), "valid_items": len(valid_items),
                       "train_tokens": len(train_stream)}}
    trainer = Trainer(model, codec, TASK, data, lambda m: lm_metrics(m, codec, valid_items),
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
