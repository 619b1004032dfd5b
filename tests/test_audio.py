"""The audio codec: mu-law round trip, clamping, resampling, mix-down, and files it must refuse."""

import numpy as np
import pytest
import soundfile as sf
import torch

from genseq.codecs import AudioCodec, codec_from_state, read_audio
from genseq.errors import GenseqError


def test_mu_law_round_trip_error_is_bounded_and_smallest_near_zero():
    codec = AudioCodec()
    x = np.linspace(-1, 1, 20001, dtype=np.float32)
    ids = codec.encode(x)
    assert min(ids) == 0 and max(ids) == 255
    error = np.abs(codec.decode(ids) - x)
    assert error.max() < 0.035  # the widest mu-law step, at full scale, is about 0.06
    quiet = np.abs(x) < 0.01
    assert error[quiet].max() < 0.001  # fine steps for quiet sound: the point of mu-law


def test_out_of_range_samples_are_clamped_not_wrapped():
    codec = AudioCodec()
    assert codec.encode(np.array([1.7, -3.0, 1.0, -1.0], np.float32)) == [255, 0, 255, 0]


def test_state_round_trip():
    codec = codec_from_state(AudioCodec(8000).state_dict())
    assert isinstance(codec, AudioCodec) and codec.sample_rate == 8000 and codec.vocab_size == 256


def test_preemphasis_round_trip_and_its_state():
    """With pre-emphasis the ids hold x[n] - a x[n-1]; decoding inverts the filter, so the wave
    comes back within the quantiser's error, and a decode that starts mid-stream from the
    sample before it (as a continuation starts from its clip's last) equals the whole decode's
    tail. A model file without the field (every earlier model) has none."""
    codec = codec_from_state(AudioCodec(8000, preemphasis=0.85).state_dict())
    assert codec.preemphasis == 0.85
    t = np.arange(8000) / 8000
    x = (0.5 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    ids = codec.encode(x)
    assert ids != AudioCodec(8000).encode(x)
    whole = codec.decode(ids)
    assert np.sqrt(np.mean((whole - x) ** 2)) < 0.005 and np.abs(whole - x).max() < 0.02
    assert np.allclose(codec.decode(ids[4000:], before=float(whole[3999])), whole[4000:], atol=1e-6)
    state = AudioCodec(8000).state_dict()
    del state["preemphasis"]
    assert codec_from_state(state).preemphasis == 0.0
    with pytest.raises(GenseqError, match="pre-emphasis of 1.0"):
        AudioCodec(8000, preemphasis=1.0)


def test_preemphasis_moves_id_jitter_down_the_spectrum():
    """The point of it: the same white jitter of the ids, decoded, puts far less power in the top
    half of the spectrum than without the filter."""
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    jitter = np.random.default_rng(0).integers(-2, 3, len(x))
    high, share = [], []
    for a in (0.0, 0.85):
        codec = AudioCodec(16000, preemphasis=a)
        noise = codec.decode(np.clip(np.array(codec.encode(x)) + jitter, 0, 255)) - codec.decode(codec.encode(x))
        power = np.abs(np.fft.rfft(noise)) ** 2
        high.append(power[len(power) // 2:].sum())
        share.append(high[-1] / power.sum())
    assert high[1] < 0.25 * high[0]
    # not only less jitter (the filtered signal is smaller, so its ids are finer): jitter moved down
    assert share[0] > 0.4 and share[1] < 0.1


def test_bin_widths_tile_full_scale_and_densities_compare_across_codecs():
    """The mu-law bins tile [-1, 1], finest near 0. A model of the waveform that is uniform on
    [-1, 1] gives each id the probability of its bin, whatever the codec quantises: its bits over
    ids differ between a plain and a pre-emphasised codec, its density is 1 bit/sample in both."""
    widths = AudioCodec(8000).log2_bin_widths()
    assert abs(float((2 ** widths).sum()) - 2.0) < 1e-9 and widths[128] < widths[254] - 6
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 20000).astype(np.float32)
    bits = []
    for codec in (AudioCodec(8000), AudioCodec(8000, preemphasis=0.85)):
        ids = codec.encode_stream([x]).long()[1:]
        nats = float(-torch.log(2.0 ** codec.log2_bin_widths()[ids] / 2).sum())
        metrics = codec.unit_metrics(nats, [x])
        bits.append(metrics["bits_per_sample"])
        assert abs(metrics["density_bits_per_sample"] - 1.0) < 1e-3
    assert abs(bits[0] - bits[1]) > 0.1


def test_resampling_keeps_duration_and_pitch(tmp_path):
    rate, seconds = 44100, 1.0
    t = np.arange(int(rate * seconds)) / rate
    sf.write(tmp_path / "a.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    wave = read_audio(tmp_path / "a.wav", 16000)
    assert abs(len(wave) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 440) < 2


def test_stereo_is_mixed_to_mono(tmp_path):
    t = np.arange(8000) / 8000
    left = 0.5 * np.sin(2 * np.pi * 200 * t)
    sf.write(tmp_path / "s.flac", np.stack([left, 0.5 * left], 1), 8000)
    wave = read_audio(tmp_path / "s.flac", 8000)
    assert wave.ndim == 1 and np.allclose(wave, 0.75 * left, atol=1e-3)


@pytest.mark.parametrize("case", ["truncated", "text", "empty", "missing"])
def test_bad_audio_files_get_a_clear_error(tmp_path, case):
    path = tmp_path / "clip.wav"
    if case == "truncated":
        sf.write(path, np.zeros(4000), 8000)
        path.write_bytes(path.read_bytes()[:30])
    elif case == "text":
        path.write_text("this is not audio\n")
    elif case == "empty":
        sf.write(path, np.zeros(0), 8000)
    expected = {"truncated": "not an audio file", "text": "not an audio file", "empty": "holds no samples",
                "missing": "does not exist"}[case]
    with pytest.raises(GenseqError, match=expected):
        read_audio(path, 16000)
