"""The image codec: palette fit, round trip, transparency, sizing, the lecture's format, refusals."""

import numpy as np
import pytest
from PIL import Image

from genseq.codecs import ImageCodec, codec_from_state, read_image
from genseq.codecs.image import fit_size, read_lecture_corpus
from genseq.errors import GenseqError

from conftest import sprite


def test_palette_recovers_the_colours_and_round_trips_exactly():
    images = [sprite(i) for i in range(10)]
    codec = ImageCodec.fit(images, colours=3, height=8, width=8)
    assert sorted(map(tuple, codec.palette)) == [(30, 30, 30), (40, 160, 60), (200, 40, 40)]
    for image in images:
        ids = codec.encode(image)
        assert len(ids) == 64 and max(ids) < codec.start_id
        assert np.array_equal(codec.decode(ids), image)


def test_transparency_is_its_own_class():
    image = sprite(3)
    codec = ImageCodec.fit([image], colours=2, height=8, width=8)
    ids = np.array(codec.encode(image))
    clear = image.reshape(-1, 4)[:, 3] == 0
    assert (ids[clear] == codec.transparent_id).all() and (ids[~clear] != codec.transparent_id).all()
    assert (codec.decode(ids)[..., 3].reshape(-1)[clear] == 0).all()
    assert codec.vocab_size == 2 + 1 + 1  # colours, transparency, start


def test_state_round_trip():
    codec = ImageCodec.fit([sprite(1)], colours=3, height=8, width=8)
    again = codec_from_state(codec.state_dict())
    assert np.array_equal(again.palette, codec.palette) and again.encode(sprite(1)) == codec.encode(sprite(1))


def test_resizing_keeps_aspect_and_pads_with_transparency():
    wide = np.full((4, 8, 4), 255, np.uint8)
    out = fit_size(wide, 8, 8)
    assert out.shape == (8, 8, 4)
    assert (out[2:6, :, 3] == 255).all() and (out[:2, :, 3] == 0).all() and (out[6:, :, 3] == 0).all()


def test_lecture_format_maps_indices_exactly(tmp_path):
    palette = np.array([[255, 255, 255], [10, 20, 30], [200, 100, 0]])
    rows = np.random.default_rng(0).integers(0, 3, (5, 16))
    (tmp_path / "pixels.txt").write_text("\n".join(" ".join(map(str, r)) for r in rows))
    (tmp_path / "colormap.txt").write_text("\n".join(" ".join(map(str, c)) for c in palette))
    images, read_palette = read_lecture_corpus(tmp_path / "pixels.txt", tmp_path / "colormap.txt")
    codec = ImageCodec.from_palette(read_palette, 4, 4)
    assert [codec.encode(image) for image in images] == rows.tolist()


def test_palette_larger_than_the_pixels_is_refused():
    with pytest.raises(GenseqError, match="only 3 distinct opaque colours; give --palette 3"):
        ImageCodec.fit([sprite(0), sprite(1)], colours=167, height=8, width=8)


@pytest.mark.parametrize("case", ["text", "truncated", "tiny", "huge"])
def test_bad_images_get_a_clear_error(tmp_path, case):
    path = tmp_path / "x.png"
    if case == "text":
        path.write_text("not an image")
    elif case == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    else:
        Image.new("RGB", (4000, 4000)).save(path)
    expected = {"text": "not an image", "truncated": "not an image", "tiny": "1x1 pixels",
                "huge": "4000x4000 pixels"}[case]
    with pytest.raises(GenseqError, match=expected):
        read_image(path)
