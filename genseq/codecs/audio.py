"""Audio as 8-bit mu-law samples (ITU-T G.711; the WaveNet and SampleRNN set-up).

Any file ``soundfile`` reads (WAV, FLAC, OGG, MP3 where libsndfile supports it), at any rate, with
any number of channels and any sample type, is mixed to mono, resampled to the codec's rate with
``torchaudio.functional.resample``, clamped to [-1, 1] (``mu_law_encoding`` does not clamp) and
mu-law encoded to 256 levels. One token is one sample.
"""

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from genseq.codecs.base import Codec
from genseq.errors import GenseqError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au")
SAMPLE_RATE = 16000  # the rate a new audio model runs at unless told otherwise


def read_audio(path, sample_rate: int) -> np.ndarray:
    """The samples of an audio file as float32 mono at ``sample_rate``, clamped to [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise GenseqError(f"{path} does not exist; give a WAV, FLAC or OGG file")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError or TypeError by case
        reason = str(e).split(":")[-1].strip() or type(e).__name__
        raise GenseqError(f"{path} is not an audio file genseq can read ({reason}); give a WAV, "
                          "FLAC or OGG file") from None
    if len(data) == 0:
        raise GenseqError(f"{path} holds no samples; give a clip at least a fraction of a second long")
    return to_mono(data, rate, sample_rate)


def to_mono(data: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """Samples (n,) or (n, channels) at ``rate`` -> float32 mono (m,) at ``sample_rate``, clamped
    to [-1, 1]."""
    data = np.asarray(data, np.float32)
    if data.ndim not in (1, 2) or not data.size:
        raise GenseqError(f"a clip must be (samples,) or (samples, channels) with some samples; got shape {data.shape}")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1) if data.ndim == 2 else data))
    if rate != sample_rate:
        wave = AF.resample(wave, rate, sample_rate)
    return wave.clamp(-1.0, 1.0).numpy()


def wav_shortfall(path) -> tuple[float, float] | None:
    """For a WAV file whose header promises more sample data than the file holds (a cut
    download), (seconds promised, seconds held); None for a whole WAV or any other format.
    libsndfile reads what is there without a word, so genseq looks at the header itself."""
    try:
        with open(path, "rb") as f:
            header = f.read(12)
            if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                return None
            size, block, rate = Path(path).stat().st_size, 0, 0
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], int.from_bytes(chunk[4:], "little")
                if name == b"fmt ":
                    fmt = f.read(length + length % 2)
                    rate, block = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[12:14], "little")
                elif name == b"data":
                    held = size - f.tell()
                    if not block or not rate or length in (0, 0xFFFFFFFF) or held >= length:
                        return None  # 0 and 0xFFFFFFFF: a streamed WAV that never set its size
                    return length / block / rate, held // block / rate
                else:
                    f.seek(length + length % 2, 1)
    except OSError:
        return None


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


class AudioCodec(Codec):
    """Waveforms <-> mu-law ids at one sample rate. An item is a float32 mono array.

    With ``preemphasis`` a (LPCNet's noise shaping, Valin and Skoglund 2019) the codec encodes
    x[n] - a x[n-1] and decodes through the inverse filter y[n] = x[n] + a y[n-1]: a sampled
    model's jitter, white in the ids, comes out with its power moved from the top of the spectrum
    to the bottom, under the music. 0 (the default, and every model trained before it): none."""

    kind = "audio"
    unit = "sample"
    window = 2048  # samples per training window (128 ms at 16 kHz)

    def __init__(self, sample_rate: int = SAMPLE_RATE, levels: int = 256, preemphasis: float = 0.0):
        if not 0.0 <= preemphasis < 1.0:
            raise GenseqError(f"a pre-emphasis of {preemphasis} is outside [0, 1); give e.g. 0.85, or 0 for none")
        self.sample_rate, self.levels, self.preemphasis = int(sample_rate), int(levels), float(preemphasis)

    @property
    def vocab_size(self) -> int:
        return self.levels

    def read(self, path) -> np.ndarray:
        return read_audio(path, self.sample_rate)

    def from_array(self, data: np.ndarray, rate: int) -> np.ndarray:
        """Samples at ``rate`` as the model reads a file: mono at its rate, clamped."""
        return to_mono(data, rate, self.sample_rate)

    def read_corpus(self, path) -> list[np.ndarray]:
        """Every audio file in a folder (sorted by path), or one file."""
        path = Path(path)
        files = audio_files(path) if path.is_dir() else [path]
        if not files:
            raise GenseqError(f"{path} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
        return [self.read(file) for file in files]

    def encode(self, item) -> list[int]:
        return self.encode_tensor(item).tolist()

    def encode_tensor(self, item) -> torch.Tensor:
        wave = torch.as_tensor(np.asarray(item, dtype=np.float32))
        if self.preemphasis:
            wave = AF.preemphasis(wave.clamp(-1.0, 1.0), self.preemphasis)
        return AF.mu_law_encoding(wave.clamp(-1.0, 1.0), self.levels)

    def decode(self, ids, before: float = 0.0) -> np.ndarray:
        """The waveform of ``ids``. ``before``: with pre-emphasis, the sample just before them
        (a continuation's: its clip's last), which the inverse filter continues from."""
        ids = torch.as_tensor(ids, dtype=torch.long).cpu()
        wave = AF.mu_law_decoding(ids, self.levels).double()
        if self.preemphasis and len(wave):
            a = self.preemphasis
            wave = AF.deemphasis(wave, a) + before * a ** torch.arange(1, len(wave) + 1, dtype=torch.float64)
        return wave.float().numpy()

    def encode_stream(self, items) -> torch.Tensor:
        """The clips one after another, as uint8 ids (a 25-minute corpus is 24 MB)."""
        return torch.cat([self.encode_tensor(item).to(torch.uint8) for item in items])

    def prime(self, prefix=None) -> list[int]:
        """The prefix's ids, or one sample of silence to start from nothing."""
        return self.encode(prefix if prefix is not None else np.zeros(1, np.float32))

    def unit_metrics(self, nats: float, items) -> dict:
        """Bits per sample, the seconds scored and the bit rate they imply, and the bits per sample
        of the waveform as a density (:meth:`log2_bin_widths`), which compares models across codecs."""
        samples = sum(len(item) for item in items)
        bits = nats / math.log(2) / samples
        ids, chunk = self.encode_stream(items)[1:], 1 << 20  # counted a chunk at a time: memory flat
        counts = sum((torch.bincount(ids[i:i + chunk].long(), minlength=self.levels)
                      for i in range(0, len(ids), chunk)), torch.zeros(self.levels, dtype=torch.long))
        widths = float((counts.double() * self.log2_bin_widths()).sum()) / samples
        return {"bits_per_sample": bits, "audio_seconds": samples / self.sample_rate,
                "kbit_per_second": bits * self.sample_rate / 1000, "density_bits_per_sample": bits + widths}

    def log2_bin_widths(self) -> torch.Tensor:
        """log2 of the width of each id's bin of the signal it quantises (full scale 2). Bits per
        sample over ids compare models of one codec; spread each id's probability evenly over its
        bin (Theis et al. 2016's dequantisation) and a model is a density of the waveform, whose
        bits per sample are the ids' plus the mean log2 width of the observed bins. Pre-emphasis
        has a unit Jacobian, so that density is the waveform's whatever the filter."""
        mu = self.levels - 1
        edges = ((torch.arange(self.levels + 1, dtype=torch.float64) - 0.5) * 2 / mu - 1).clamp(-1, 1)
        edges = torch.sign(edges) * torch.expm1(edges.abs() * math.log1p(mu)) / mu  # mu-law's inverse
        return torch.log2(edges[1:] - edges[:-1])

    def state_dict(self) -> dict:
        return {"kind": self.kind, "sample_rate": self.sample_rate, "levels": self.levels,
                "preemphasis": self.preemphasis}

    @classmethod
    def from_state(cls, state: dict) -> "AudioCodec":
        return cls(state["sample_rate"], state["levels"], state.get("preemphasis", 0.0))
