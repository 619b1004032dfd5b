"""Shared fixtures: a small slice of the shipped verse corpus and a tiny trained model."""

from pathlib import Path

import pytest
import torch

from genseq.tasks import train
from genseq.train import TrainConfig

CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "shakespeare" / "train.txt"
TINY_MODEL = dict(hidden_size=48, embed_dim=32, num_layers=1, dropout=0.0)
LINES = ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡", "春眠不觉晓", "处处闻啼鸟",
         "夜来风雨声", "花落知多少", "白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"]


@pytest.fixture(scope="session")
def verse_lines() -> list[str]:
    return CORPUS.read_text(encoding="utf-8").splitlines()[:600]


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory, verse_lines) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "verse.txt"
    path.write_text("\n".join(verse_lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, corpus_file) -> Path:
    """A run folder holding a tiny model trained for a few steps."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("runs") / "tiny"
    train("lm", corpus_file, run, model_config=TINY_MODEL, codec_options={"vocab_size": 300}, progress=False,
             train_config=TrainConfig(steps=30, batch_size=8, seq_len=32, valid_every=15, seed=0))
    return run


@pytest.fixture(scope="session")
def tiny_vae_run(tmp_path_factory):
    torch.set_num_threads(1)
    corpus = tmp_path_factory.mktemp("poems") / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    run = tmp_path_factory.mktemp("runs") / "vae"
    train("vae", corpus, run, model_config=dict(hidden_size=48, embed_dim=32, latent_dim=8,
                                                 kl_anneal_steps=40, dropout=0.0, word_dropout=0.0),
          valid=corpus, progress=False,
          train_config=TrainConfig(steps=120, batch_size=16, lr=1e-2, valid_every=60, seed=0))
    return run
