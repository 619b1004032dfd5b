"""The audio codec: mu-law round trip, clamping, resampling, mix-down, and files it must refuse."""

import numpy as np
import pytest
import soundfile as sf

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
