"""Audio generation speed: is the frame model's sampler faster than real time, and than the usual loops?

Measures, on one CPU thread (``torch.set_num_threads(1)``, one BLAS thread):
  - the shipped ``speech`` and ``piano`` models through ``genseq.generate.generate`` (which uses
    ``FrameLM.sample_fast``), primed with the first 1 s of a test clip and generating 2 s
    (32,000 samples), batch 1, 8 and 16, in this process alone (``workers=1``); the timed call
    includes priming. Then batch 8 and 16 as ``genseq continue -n`` runs them, the takes shared
    out among one forked worker per CPU core (``_cores``; each worker on one thread);
  - baseline A: an eager PyTorch sample-level loop, Embedding(256, 64) -> GRUCell(64, 512) ->
    Linear(512, 256), one ``torch.multinomial(softmax(logits))`` per sample under inference_mode;
  - baseline C (when Numba is installed, so the sampler runs the compiled genseq.kernels loop):
    the same models and calls with the NumPy loops (priming and sampling), batch 1 and 8 takes on
    the cores;
  - baseline B: ``torchaudio.models.WaveRNN`` (upsample 5x5x8, hop 200, 10 res blocks, n_rnn =
    n_fc = 512), ``infer`` on a random (batch, 80, frames) spectrogram for ~0.5 s of audio.
Every case is the best of ``--repeat`` timed calls after a short warm-up call; the slow
baselines generate fewer samples (``--baseline-samples``, ~0.5 s) than the frame models.
Speeds are samples/s in total over the batch; ``x_realtime`` is that over the 16 kHz rate.
Memory: the peak RSS of a fresh process (``--child SECONDS``) that loads ``speech``, primes it with
1 s and generates 10 s, and one that generates 60 s (batch 1): it must not grow with length. The
children run first, while this process holds only torch (Linux hands a parent's peak RSS over
fork/exec to the child's ru_maxrss); each also reports its current RSS before and after sampling.
Bars: batch 1 >= 16,000 samples/s (real time) and >= 1.5x real time; batch 8 >= 8x real time in
total, with the 1 s prime counted and without it (the rate at which takes are generated, as the
unprimed baselines are timed), in one process and shared out among the cores (issue 17's bar).
Run: OMP_NUM_THREADS=1 python bench/audio_speed.py [--repeat 3] [--out bench/results/audio_speed.json]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # NumPy's BLAS runs sample_fast: one thread, like torch

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from genseq import kernels
from genseq.generate import generate
from genseq.workers import available_cpus
from genseq.store import load_model

from common import RATE, ROOT, best_of, make_parser, prime_clip, timed


class SampleGRU(nn.Module):
    """Baseline A: the plain sample-level RNN, stepped eagerly in PyTorch."""

    def __init__(self):
        super().__init__()
        self.embed, self.cell, self.out = nn.Embedding(256, 64), nn.GRUCell(64, 512), nn.Linear(512, 256)

    @torch.inference_mode()
    def sample(self, steps: int, batch: int) -> torch.Tensor:
        out = torch.empty(batch, steps, dtype=torch.long)
        token = torch.full((batch,), 128, dtype=torch.long)
        h = torch.zeros(batch, 512)
        for t in range(steps):
            h = self.cell(self.embed(token), h)
            token = torch.multinomial(torch.softmax(self.out(h), -1), 1).squeeze(1)
            out[:, t] = token
        return out


def wavernn():
    from torchaudio.models import WaveRNN
    return WaveRNN(upsample_scales=[5, 5, 8], n_classes=256, hop_length=200, n_res_block=10, n_rnn=512,
                   n_fc=512, kernel_size=5, n_freq=80, n_hidden=128, n_output=128).eval()


def rss_now() -> float:
    """Current resident set size in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(seconds: float) -> None:
    """Peak RSS (MiB) after loading and priming, and after generating ``seconds`` of speech."""
    torch.set_num_threads(1)
    loaded = load_model("speech")
    prime, _ = prime_clip(loaded, "speech")
    generate(loaded.model, prime, 16, seed=0)  # prime once so both peaks include the primed forward
    before, now_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_now()
    wall, ids = timed(generate, loaded.model, prime, round(seconds * RATE), seed=0)
    after, now_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_now()
    print(json.dumps({"rss_mib_before": round(now_before, 1), "rss_mib_after": round(now_after, 1),
                      "seconds": seconds, "samples": ids.shape[1], "peak_rss_mib_before": round(before, 1),
                      "peak_rss_mib_after": round(after, 1), "growth_mib": round(after - before, 1),
                      "wall_s": round(wall, 2)}))


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="audio the frame models generate")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-samples", type=int, default=8000, help="samples the baselines generate")
    parser.add_argument("--baseline-repeat", type=int, default=3)
    parser.add_argument("--memory-seconds", type=float, nargs="*", default=[10.0, 60.0])
    parser.add_argument("--out", default=str(ROOT / "bench/results/audio_speed.json"))
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    steps = round(args.seconds * RATE)
    cases = {}
    # First, while this process is small: Linux carries a parent's peak RSS over fork/exec into the
    # child's ru_maxrss, so children started after the big baselines would report the parent's peak.
    memory = []
    for seconds in args.memory_seconds:
        run = subprocess.run([sys.executable, __file__, "--child", str(seconds)], capture_output=True, text=True,
                             check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        memory.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(f"  memory {seconds:>5.0f} s: {memory[-1]}", flush=True)

    def record(name, batch, samples_each, seconds, repeat, **extra):
        total = batch * samples_each / seconds
        cases[name] = {"batch": batch, "samples_per_take": samples_each, "best_s": round(seconds, 4),
                       "repeat": repeat, "samples_per_s": round(total, 1),
                       "x_realtime": round(total / RATE, 3), **extra}
        print(f"  {name:<22} {total:>10,.0f} samples/s  {total / RATE:6.2f}x real time  {extra.get('prime_s', '')}",
              flush=True)

    compiled_loops = kernels.KERNELS
    for corpus in ("speech", "piano"):
        loaded = load_model(corpus)
        prime, clip = prime_clip(loaded, corpus)
        def prime_call(ids, m=loaded.model):
            with torch.inference_mode():  # the priming call alone, as generate makes it, to split it off
                return m.prime(torch.tensor([ids]))
        cases_here = [(1, 1, True), (8, 1, True), (16, 1, True), (8, None, True), (16, None, True)]
        if compiled_loops:  # the same loops in NumPy, for the compiled kernels' ratio
            cases_here += [(1, 1, False), (8, None, False)]
        prime_s = {}
        for batch, workers, compiled in cases_here:
            kernels.KERNELS = compiled_loops if compiled else None
            if compiled not in prime_s:
                prime_s[compiled] = best_of(prime_call, args.repeat, prime, warmup=lambda: prime_call(prime[:16]))
            t = best_of(generate, args.repeat, loaded.model, prime, steps, batch=batch, seed=0, workers=workers,
                        warmup=lambda: generate(loaded.model, prime, 320, batch=batch, seed=0, workers=workers))
            name = f"{corpus}{'' if compiled else '_numpy'}{'' if workers == 1 else '_cores'}_b{batch}"
            record(name, batch, steps, t, args.repeat, prime_clip=clip, prime_samples=len(prime),
                   prime_s=round(prime_s[compiled], 4),
                   sampling_only_samples_per_s=round(batch * steps / (t - prime_s[compiled]), 1),
                   workers=workers or available_cpus(), loops=kernels.KERNELS or "numpy")
        kernels.KERNELS = compiled_loops
        for name in (f"{corpus}_b1", f"{corpus}_cores_b8"):
            numpy_case = cases.get(name.replace(corpus, f"{corpus}_numpy"))
            if numpy_case:
                cases[name]["vs_numpy_loop"] = round(cases[name]["samples_per_s"] / numpy_case["samples_per_s"], 2)

    gru = SampleGRU().eval()
    n = args.baseline_samples
    for batch in (1, 8):
        t = best_of(gru.sample, args.baseline_repeat, n, batch, warmup=lambda: gru.sample(200, batch))
        record(f"gru_loop_b{batch}", batch, n, t, args.baseline_repeat)

    rnn = wavernn()
    frames = round(n / 200) + 5 - 1  # infer trims kernel_size - 1 frames: (frames - 4) * hop samples
    for batch in (1, 8):
        with torch.inference_mode():
            rnn.infer(torch.randn(batch, 80, 6))  # warm up (400 samples)
            samples, best = 0, float("inf")
            for _ in range(args.baseline_repeat):  # a new spectrogram each time, drawn before the clock starts
                t, (wave, _) = timed(rnn.infer, torch.randn(batch, 80, frames))
                best, samples = min(best, t), wave.shape[-1]
        record(f"wavernn_b{batch}", batch, samples, best, args.baseline_repeat, spec_frames=frames)

    for name in list(cases):
        for base in ("gru_loop", "wavernn"):
            b = int(name.split("_b")[-1])
            if (not name.startswith(("gru_loop", "wavernn")) and "_cores" not in name and "_numpy" not in name
                    and f"{base}_b{b}" in cases):
                cases[name][f"vs_{base}"] = round(cases[name]["samples_per_s"] / cases[f"{base}_b{b}"]["samples_per_s"], 2)

    bars = {
        "batch1_realtime": {f"{c}": cases[f"{c}_b1"]["samples_per_s"] >= RATE for c in ("speech", "piano")},
        "batch1_1.5x_realtime": {f"{c}": cases[f"{c}_b1"]["x_realtime"] >= 1.5 for c in ("speech", "piano")},
        "batch8_8x_realtime": {f"{c}": cases[f"{c}_b8"]["x_realtime"] >= 8 for c in ("speech", "piano")},
        # the same after the one-off 1 s prime: the rate at which takes are generated, as the
        # baselines (which are not primed) are timed
        "batch8_8x_realtime_sampling": {f"{c}": cases[f"{c}_b8"]["sampling_only_samples_per_s"] >= 8 * RATE
                                        for c in ("speech", "piano")},
        # the same with the takes shared out among the machine's cores, as genseq continue -n does
        "batch8_8x_realtime_cores": {f"{c}": cases[f"{c}_cores_b8"]["x_realtime"] >= 8 for c in ("speech", "piano")},
        "memory_flat": (abs(memory[-1]["peak_rss_mib_after"] - memory[0]["peak_rss_mib_after"]) < 64
                        if len(memory) > 1 else None),
    }
    result = {"threads": 1, "torch": torch.__version__, "loops": compiled_loops or "numpy", "cpu_count": os.cpu_count(),
              "load_average_at_start": os.getloadavg(), "settings": vars(args) | {"child": None},
              "cases": cases, "memory": memory, "bars": bars,
              "runtime_s": round(time.perf_counter() - started, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")

    print(f"\n{'case':<16}{'batch':>6}{'samples/s':>12}{'x real time':>13}{'w/o prime':>11}{'x RT':>7}"
          f"{'vs GRU loop':>13}{'vs WaveRNN':>12}{'vs NumPy loop':>15}")
    for name, c in cases.items():
        print(f"{name.rsplit('_b', 1)[0]:<16}{c['batch']:>6}{c['samples_per_s']:>12,.0f}{c['x_realtime']:>13.2f}"
              f"{c.get('sampling_only_samples_per_s', '-'):>11}"
              f"{round(c['sampling_only_samples_per_s'] / RATE, 2) if 'sampling_only_samples_per_s' in c else '-':>7}"
              f"{c.get('vs_gru_loop', '-'):>13}{c.get('vs_wavernn', '-'):>12}{c.get('vs_numpy_loop', '-'):>15}")
    for m in memory:
        print(f"memory: {m['seconds']:.0f} s of speech, batch 1: peak RSS {m['peak_rss_mib_after']:.1f} MiB "
              f"(before generating {m['peak_rss_mib_before']:.1f}; current RSS {m['rss_mib_before']:.1f} -> "
              f"{m['rss_mib_after']:.1f} MiB)")
    print(f"bars: {json.dumps(bars)}\nwrote {args.out} in {result['runtime_s']} s")


if __name__ == "__main__":
    main()
