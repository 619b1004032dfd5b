"""Pre-emphasis for the audio codec, measured: what it does to a sampler's hiss, and the likelihoods.

1. Hiss, simulated. A sampled model's jitter is modelled as Laplace noise of scale SIGMA added
   to the signal the codec quantises: the waveform itself without pre-emphasis, x[n] - a x[n-1]
   with it (whose noise the decoder's inverse filter then shapes). For the piano's test chorales'
   first 8 s this prints the median per-second spectral flatness and tonal share
   (bench/audio_quality.py's measures) of the decoded signal, and the jitter's entropy in
   bits/sample (the mu-law levels it spreads over, without pre-emphasis), so that a flatness can
   be read as the uncertainty that would cause it. SIGMA 0 is the codec's own floor.

2. Likelihoods. Bits per sample over mu-law ids compare models of one codec only: a codec with
   pre-emphasis quantises another signal, in levels of other widths. As densities of the
   waveform (``density_bits_per_sample``, :meth:`genseq.codecs.AudioCodec.log2_bin_widths`) the
   two are one measure. Lower is better; it is negative.

Run: OMP_NUM_THREADS=1 python bench/preemphasis.py [--model NAME=PATH ...] [--out FILE]
(the shipped piano is always scored; ``--model`` adds others, e.g. a run's best.pt).
"""

import math

import numpy as np
import torch
import torchaudio.functional as AF

from genseq.codecs.audio import AudioCodec, audio_files
from genseq.store import load_model
from genseq.tasks import lm_metrics

import audio_quality
from common import ROOT, make_parser, write_result

SIGMAS = [0.0, 0.001, 0.002, 0.003, 0.004, 0.005]
COEFFICIENTS = [0.0, 0.85]


def jitter_entropy(x: np.ndarray, sigma: float, levels: int = 256) -> float:
    """Mean entropy (bits) of the mu-law id of x + Laplace(sigma), over every 7th sample of x."""
    mu = levels - 1
    edges = (np.arange(levels + 1) - 0.5) * 2 / mu - 1
    edges = np.sign(edges) * np.expm1(np.abs(edges) * math.log1p(mu)) / mu
    edges[0], edges[-1] = -np.inf, np.inf
    v = edges[None, :] - x[::7, None].astype(np.float64)
    cdf = np.where(v < 0, 0.5 * np.exp(np.minimum(v, 0) / sigma), 1 - 0.5 * np.exp(-np.maximum(v, 0) / sigma))
    p = np.diff(cdf, axis=1)
    return float(np.mean(-(p * np.log2(np.maximum(p, 1e-300))).sum(1)))


def simulate(clips: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    rows = {}
    for name, x in clips.items():
        rows[name] = []
        for a in COEFFICIENTS:
            codec = AudioCodec(16000, preemphasis=a)
            signal = AF.preemphasis(torch.from_numpy(x), a) if a else torch.from_numpy(x)
            for sigma in SIGMAS:
                noisy = signal + torch.from_numpy(rng.laplace(0, sigma, len(x)) if sigma else np.zeros(len(x))).float()
                ids = AF.mu_law_encoding(noisy.clamp(-1, 1), 256)
                seconds = audio_quality.seconds_of(codec.decode(ids), 16000)
                row = {"preemphasis": a, "sigma": sigma,
                       "flatness": round(audio_quality.median(s["flatness"] for s in seconds), 4),
                       "tonal": round(audio_quality.median(s["tonal"] for s in seconds), 3),
                       "jitter_bits": round(jitter_entropy(x, sigma), 2) if sigma else 0.0}
                rows[name].append(row)
                print(f"  {name:<14} pre-emphasis {a:<4} sigma {sigma:<6} flatness {row['flatness']:<7} "
                      f"tonal {row['tonal']:<6} jitter {row['jitter_bits']} bits/sample", flush=True)
    return rows


def density(name: str, spec: str, test: list) -> dict:
    """Bits/sample of the test clips over the model's ids, and as a density of the waveform."""
    loaded = load_model(spec)
    metrics = lm_metrics(loaded.model, loaded.codec, test)
    row = {"model": str(loaded.path), "preemphasis": loaded.codec.preemphasis,
           "bits_per_sample": round(metrics["bits_per_sample"], 4),
           "density_bits_per_sample": round(metrics["density_bits_per_sample"], 4)}
    print(f"  {name:<10} pre-emphasis {row['preemphasis']:<4} {row['bits_per_sample']} bits/sample over ids, "
          f"{row['density_bits_per_sample']} as a density", flush=True)
    return row


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="another model to score")
    parser.add_argument("--no-simulation", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench/results/preemphasis.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = ROOT / "corpora/audio/piano/test"
    codec = AudioCodec(16000)
    test = [codec.read(path) for path in audio_files(folder)]
    result = {"corpus": str(folder.relative_to(ROOT))}
    if not args.no_simulation:
        print("simulated jitter, the test chorales' first 8 s:")
        result["simulation"] = simulate({p.name: x[:8 * 16000] for p, x in zip(audio_files(folder), test)})
    print("the test chorales, whole:")
    models = {"piano": "piano", **dict(m.split("=", 1) for m in args.model)}
    result["models"] = {name: density(name, spec, test) for name, spec in models.items()}
    write_result(args.out, result)


if __name__ == "__main__":
    main()
