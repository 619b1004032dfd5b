"""Noise-shaped sampling for audio: each sample drawn exactly from the model's distribution, but
at a quantile that follows the last one's. Measured, not shipped: the model reads its own drift
as the music, and the notes stop where the hiss does (docs/results.md).

The piano model's hiss is the jitter of its draws: independent from sample to sample, so white,
and loudest where the music has least energy, at the top of the spectrum. Cooling the
distribution (temperature, top-p) quietens the jitter and the attacks together
(docs/results.md). Here every draw still comes from the model's distribution at the given
temperature, by inverse CDF over the mu-law levels (which are ordered by amplitude), but the
uniform variates are not independent: u_t = Phi(z_t) with z_t = rho z_(t-1) + sqrt(1 - rho^2) e_t,
a unit-variance AR(1) process, so u_t is still uniform. A draw above its distribution's median
tends to be followed by another: the deviations move slowly, their power moves from the top of
the spectrum to the bottom, under the notes, and no level is made more or less likely.

Each SPEC ``RHO:T`` runs bench/audio_quality.py's listening test on the piano's clips (the two
test chorales, the plucked and the sine melody; 3 s primes, 8 s continuations, 3 takes, seed 0),
through the step-by-step sampler with this draw in place of :func:`genseq.generate.sample_next`.
Run: OMP_NUM_THREADS=1 python bench/shaped_sampler.py 0:0.9 0.8:0.9 0.95:1.0 [--model piano]
"""

import math
import time

import torch

import genseq.generate
from genseq.store import load_model

import audio_quality
from common import ROOT, make_parser, write_result


def shaped(rho: float, seed: int = 0):
    """A stand-in for :func:`genseq.generate.sample_next` that keeps each row's AR(1) state."""
    noise = torch.Generator().manual_seed(seed)
    state = {"z": None}

    def draw(logits, temperature, top_k, top_p, generator):
        p = (logits.float() / temperature).softmax(-1)
        z = state["z"]
        e = torch.randn(p.size(0), generator=noise, dtype=torch.float64)
        z = e if z is None or z.shape != e.shape else rho * z + math.sqrt(1 - rho * rho) * e
        state["z"] = z
        u = (0.5 * (1 + torch.erf(z / math.sqrt(2)))).clamp(1e-12, 1 - 1e-12)
        cdf = p.double().cumsum(-1)
        cdf = cdf / cdf[:, -1:]
        return torch.searchsorted(cdf, u.unsqueeze(1)).squeeze(1).clamp(max=p.size(-1) - 1)
    return draw


def main():
    parser = make_parser(__doc__)
    parser.add_argument("specs", nargs="+", metavar="RHO:T", help="quantile correlation : temperature")
    parser.add_argument("--model", default="piano")
    parser.add_argument("--takes", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench/results/shaped_sampler.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.model)
    clips = audio_quality.piano_clips(loaded)
    result = {"model": str(loaded.path), "specs": {}}
    for spec in args.specs:
        rho, temperature = (float(v) for v in spec.split(":"))
        genseq.generate.sample_next = shaped(rho)
        print(f"quantiles correlated {rho}, temperature {temperature}:")
        start = time.perf_counter()
        # top_p < 1 sends generation down the step-by-step path, which calls sample_next
        result["specs"][spec] = audio_quality.listener(loaded, "piano", clips, 3.0, 8.0, args.takes, 0,
                                                      temperature=temperature, top_p=0.99999)
        result["specs"][spec]["wall_s"] = round(time.perf_counter() - start, 1)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
