"""The image VAE: a convolutional encoder and a decoder that draws every pixel from the code."""

import numpy as np
import pytest
import torch
from PIL import Image

import genseq
from conftest import sprite
from genseq.data import ItemBatches
from genseq.models import ImageVAE, ImageVAEConfig, build_model, model_config
from genseq.vae import is_sprite, largest_component, sweep_figures
from test_cli import run


def rows(ids: torch.Tensor) -> torch.Tensor:
    """(B, H, W) class ids -> (B, T) rows ``bos x eos`` with the pixel ids from offset 4."""
    b = len(ids)
    return torch.cat([torch.full((b, 1), 2), ids.flatten(1) + 4, torch.full((b, 1), 3)], 1)


def tiny(height=8, width=8, classes=5, **options) -> ImageVAE:
    torch.manual_seed(0)
    return ImageVAE(ImageVAEConfig(vocab_size=4 + classes + 1, height=height, width=width, offset=4,
                                   classes=classes, channels=8, embed_dim=4, latent_dim=3, **options))


@pytest.mark.parametrize("size", [(8, 8), (20, 20), (12, 28)])
def test_shapes_at_any_size(size):
    model = tiny(*size)
    tokens = rows(torch.randint(0, 5, (2, *size)))
    mean, logvar = model.encode(tokens)
    assert mean.shape == logvar.shape == (2, 3)
    assert model.logits(mean).shape == (2, 5, *size)
    assert model.reconstruction_nll(tokens, mean).shape == (2,)
    rendered = model.render(mean)
    assert rendered.shape == (2, size[0] * size[1], 10)
    # only pixel ids can be drawn: the VAE's specials (0-3) and the codec's start id get -inf
    assert torch.isinf(rendered[..., :4]).all() and torch.isinf(rendered[..., 9]).all()
    assert torch.isfinite(rendered[..., 4:9]).all()


def test_a_few_steps_lower_the_loss():
    model = tiny()
    tokens = rows(torch.randint(0, 5, (4, 8, 8)).repeat(4, 1, 1))  # four pictures, four times each
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    first = model.loss(tokens, step=10_000)["loss"].item()
    for _ in range(30):
        loss = model.loss(tokens, step=10_000)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model.loss(tokens, step=10_000)["loss"].item() < 0.8 * first


def test_rebuilt_from_its_config_it_draws_the_same():
    model = tiny(dropout=0.1).eval()
    copy = build_model(model.family, model_config(model)).eval()
    copy.load_state_dict(model.state_dict())
    z = torch.randn(3, 3)
    assert torch.equal(model.render(z), copy.render(z))


def test_image_batches_for_a_vae_mirror_half_the_images():
    images = [list(range(12)), list(range(100, 112))]  # 3 rows of 4 pixels each
    data = ItemBatches(images, 64, 0, 2, 3, flip_width=4)
    batch = data.batch(0)
    assert batch.shape == (64, 14) and (batch[:, 0] == 2).all() and (batch[:, -1] == 3).all()
    body = batch[:, 1:-1].view(64, 3, 4)
    originals = {tuple(x) for x in images}
    mirrored = {tuple(torch.tensor(x).view(3, 4).flip(-1).flatten().tolist()) for x in images}
    kinds = [tuple(row.flatten().tolist()) in mirrored for row in body]
    assert all(tuple(row.flatten().tolist()) in originals | mirrored for row in body)
    assert 10 < sum(kinds) < 54  # about half are mirrored
    assert torch.equal(data.batch(0), batch)  # a function of the step


def test_sprite_test_and_sweep_figures():
    disk = np.zeros((16, 16, 4), np.uint8)
    yy, xx = np.mgrid[:16, :16]
    inside = (yy - 8) ** 2 + (xx - 8) ** 2 < 30
    disk[inside] = 255
    disk[inside, 0] = (yy[inside] * 16).astype(np.uint8)  # 4+ shades
    assert largest_component(inside) == inside.sum() and is_sprite(disk)
    block = np.full((16, 16, 4), 255, np.uint8)
    assert not is_sprite(block)  # all opaque, one colour
    noise = np.zeros((16, 16, 4), np.uint8)
    noise[::2, ::2] = 255  # scattered single pixels: no main body
    noise[::2, ::2, 0] = np.arange(64).reshape(8, 8)
    assert not is_sprite(noise)
    on_white = disk.copy()  # the lecture's sprites: no transparency, a background colour instead
    on_white[~inside] = (250, 250, 250, 255)
    assert is_sprite(on_white) and not is_sprite(np.full((16, 16, 4), 250, np.uint8))
    still = sweep_figures([disk] * 9, 3)
    assert still == {"sweep_sprite_cells": 1.0, "sweep_neighbour_change": 0.0, "sweep_corner_change": 0.0,
                     "sweep_steps": 3}
    moving = sweep_figures([disk if i % 2 else block for i in range(9)], 3)
    assert moving["sweep_sprite_cells"] == pytest.approx(4 / 9)
    assert moving["sweep_neighbour_change"] > 0 and moving["sweep_corner_change"] == 0.0  # corners alike


@pytest.fixture(scope="module")
def image_vae_run(tmp_path_factory, sprite_folder):
    run_dir = tmp_path_factory.mktemp("runs") / "image_vae"
    result = run("train", "vae", sprite_folder, "-o", run_dir, "--steps", 8, "--valid-every", 4, "--batch-size", 4,
                 "--hidden", 8, "--embed", 4, "--latent", 4, "--palette", 3, "--quiet")
    assert result.exit_code == 0, result.output
    return run_dir


def test_cli_trains_the_conv_vae_at_native_size(image_vae_run, sprite_folder):
    model = genseq.load(image_vae_run, "cpu")
    assert model.record["family"] == "image_vae" and model.record["config"]["latent_dim"] == 4
    assert (model.codec.height, model.codec.width) == (8, 8)  # the sprites' own size
    valid = model.record["valid"]
    for key in ("recon_pixel_accuracy", "active_units", "sweep_sprite_cells", "sweep_neighbour_change",
                "sweep_corner_change"):
        assert key in valid
    assert list((image_vae_run / "samples").glob("step-*.png"))


def test_cli_traverses_interpolates_and_samples(image_vae_run, sprite_folder, tmp_path):
    sweep, row, prior = tmp_path / "sweep.png", tmp_path / "row.png", tmp_path / "prior.png"
    assert run("traverse", "-m", image_vae_run, "--dims", "1,2", "--steps", 3, "-o", sweep).exit_code == 0
    assert Image.open(sweep).size == (3 * 34 + 2, 3 * 34 + 2)
    a, b = sprite_folder / "s01.png", sprite_folder / "s02.png"
    result = run("interpolate", a, b, "-m", image_vae_run, "--steps", 4, "-o", row)
    assert result.exit_code == 0, result.output
    assert Image.open(row).size == (6 * 34 + 2, 34 + 2)  # the two given images at the ends
    model = genseq.load(image_vae_run, "cpu")
    path = model.interpolate(a, b, steps=4, refine=0)
    assert len(path) == 4 and all(np.asarray(image).shape == (8, 8, 4) for image in path)
    codes = genseq.vae.line_codes(model.model, model.codec, [np.asarray(Image.open(a).convert("RGBA"))])
    first = genseq.vae.decode_latents(model.model, model.codec, codes)[0]
    assert np.array_equal(np.asarray(path[0]), first)  # the path starts at a's code
    assert run("sample", "-m", image_vae_run, "-n", 4, "--decode", "sample", "--seed", 3, "-o", prior).exit_code == 0
    again = tmp_path / "again.png"
    run("sample", "-m", image_vae_run, "-n", 4, "--decode", "sample", "--seed", 3, "-o", again)
    assert np.array_equal(np.asarray(Image.open(prior)), np.asarray(Image.open(again)))  # seeds reproduce


def test_bad_input_is_one_line(image_vae_run, tiny_vae_run, sprite_folder, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(sprite(0, size=16)).save(big)
    a = sprite_folder / "s01.png"
    cases = [(["traverse", "-m", image_vae_run, "--dims", "0,4"], "two different dimensions from 0 to 3"),
             (["traverse", "-m", image_vae_run, "--dims", "2,2"], "two different dimensions"),
             (["traverse", "-m", image_vae_run, "--from", big], "is 16x16 pixels but model.pt draws 8x8"),
             (["interpolate", a, big, "-m", image_vae_run], "is 16x16 pixels but model.pt draws 8x8"),
             (["interpolate", a, a, "-m", tiny_vae_run], "are images but"),
             (["traverse", "-m", tiny_vae_run], "genseq interpolate and reconstruct take a sentence VAE"),
             (["reconstruct", "a line", "-m", image_vae_run], "traverse, interpolate and sample take an image VAE"),
             (["sample", "-m", image_vae_run, "--decode", "beam"], "draws every pixel at once"),
             (["train", "vae", sprite_folder, "-o", tmp_path / "r", "--word-dropout", "0.5"], "is for the sequence VAE"),
             (["train", "vae", sprite_folder, "-o", tmp_path / "r", "--splice", "0.5"], "joins lines of text")]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("arch", ["conv", "rnn"])
def test_a_vae_scaled_to_another_size_shows_its_feedback_at_that_size(tmp_path, sprite_folder, arch):
    run_dir = tmp_path / arch
    result = run("train", "vae", sprite_folder, "--valid", sprite_folder, "-o", run_dir, "--arch", arch,
                 "--steps", 2, "--valid-every", 2, "--batch-size", 4, "--hidden", 8, "--embed", 4, "--palette", 3,
                 "--size", "12x12", "--quiet")
    assert result.exit_code == 0, result.output
    shown = Image.open(run_dir / "samples" / "step-000002.png")
    assert shown.size == (4 * (12 * 4 + 2) + 2, 2 * (12 * 4 + 2) + 2)  # four held-out sprites over their reconstructions
