"""Shared fixtures: a small slice of the shipped verse corpus and a tiny trained model."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

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


TINY_FRAME = dict(hidden_size=32, embed_dim=8, token_hidden=16, head_hidden=32)


def tone(seconds: float, rate: int, freq: float, seed: int) -> np.ndarray:
    """A decaying harmonic tone with a little noise: audio a tiny model can learn something of."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3)) * np.exp(-2 * t)
    return (0.4 * wave + 0.01 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory) -> Path:
    """Six short clips at 22.05 kHz, some stereo, as WAV and FLAC."""
    folder = tmp_path_factory.mktemp("audio")
    for i in range(6):
        wave = tone(0.5, 22050, 220 * (1 + i % 3), i)
        data = np.stack([wave, wave * 0.5], 1) if i % 2 else wave
        sf.write(folder / f"clip{i}.{'flac' if i % 3 == 0 else 'wav'}", data, 22050)
    return folder


def sprite(seed: int, size: int = 8) -> np.ndarray:
    """A symmetric blob of three colours on transparency, like a tiny sprite."""
    rng = np.random.default_rng(seed)
    colours = np.array([[200, 40, 40], [40, 160, 60], [30, 30, 30]], np.uint8)
    out = np.zeros((size, size, 4), np.uint8)
    half = rng.integers(0, 4, (size - 2, size // 2 - 1))
    full = np.concatenate([half, half[:, ::-1]], 1)
    for (r, c), v in np.ndenumerate(full):
        if v:
            out[r + 1, c + 1] = (*colours[v - 1], 255)
    return out


@pytest.fixture(scope="session")
def sprite_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sprites")
    for i in range(24):
        Image.fromarray(sprite(i)).save(folder / f"s{i:02d}.png")
    return folder


@pytest.fixture(scope="session")
def tiny_audio_run(tmp_path_factory, audio_folder) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("runs") / "audio"
    train("lm", audio_folder, run, model_config=TINY_FRAME, codec_options={"sample_rate": 8000},
          valid=audio_folder, progress=False,
          train_config=TrainConfig(steps=20, batch_size=4, seq_len=256, valid_every=10, seed=0))
    return run


@pytest.fixture(scope="session")
def tiny_image_run(tmp_path_factory, sprite_folder) -> Path:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("runs") / "sprites"
    train("lm", sprite_folder, run, model_config=TINY_FRAME, progress=False,
          codec_options={"palette": 3, "size": (8, 8)}, valid_fraction=0.2,
          train_config=TrainConfig(steps=20, batch_size=8, valid_every=10, seed=0))
    return run
