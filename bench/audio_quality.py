"""Held-out quality of the audio models: bits per sample against baselines, and whether continuations stay healthy.

For each corpus (``speech``: corpora/audio/speech, ``piano``: corpora/audio/piano):
  - bits_per_sample on the test split via ``genseq.tasks.lm_metrics`` for the shipped model of the
    same name and for every ``--extra NAME=PATH`` model (a NAME starting with ``speech-`` or
    ``piano-`` is scored on that corpus only, any other NAME on both), next to the mu-law unigram
    baseline: cross-entropy in bits of the test ids under the train split's unigram counts with
    add-one smoothing. Note the protocols: a frame model scores windows of 16,000 samples from a
    fresh state; an RNN LM scores 16 contiguous lanes carrying state (``genseq.models.rnn.stream_nll``);
  - continuation health of the shipped model (or ``--model``'s): every test clip at least 1.5 s long (the first
    ``--clips`` in path order) is primed with its first 1.0 s and continued for 3.0 s
    (``genseq.tasks.continue_audio``, temperature 1.0, seed 0). Reported: mean RMS (dBFS) and mean
    spectral flatness of the primes and of the continuations, the fraction of continuations that
    went silent (RMS of the last second < -50 dBFS) and that turned into noise (flatness > 0.5).
  - what a listener hears over longer continuations (issue 17's measure): clips primed with their
    first 3.0 s and continued for ``--seconds`` (8 by default), ``--takes`` takes each (seed 0),
    for each ``--sampling`` setting (by default the model file's own, ``own``, and its whole distribution;
    ``wall_s`` is each clip's 3 takes, primes included, on the machine's cores):
    the test clips of each corpus and clips from outside it, made here (``plucked``: a Karplus-Strong
    melody of our own, ``sines``: a decaying sine melody, ``espeak``: a sentence from espeak-ng when
    it is installed). For every second of a continuation: RMS (dBFS), spectral flatness and the
    tonal share (the part of each frame's energy in its strongest 5% of frequency bins, averaged
    over active frames); reported as medians over the seconds of all takes, the quietest second,
    and the same figures for the prime; and struck notes a second (onsets by spectral flux), the
    takes' median beside the prime's. Bars (issue 17): piano median flatness <= 0.01 and tonal
    share >= 0.9, speech flatness <= 0.015, no second below -45 dBFS.
Spectral flatness: geometric over arithmetic mean of the power spectrum of 512-sample frames
(hann window, hop 256), averaged over frames whose RMS is above -60 dBFS (NaN when none is). White
noise measures ~0.56 (exp(-Euler's gamma)); the script measures it too, raw and through mu-law.
``--model piano=PATH`` puts another model in the shipped one's place (a candidate, before it ships).
Run: OMP_NUM_THREADS=1 python bench/audio_quality.py [--extra speech-gru=/path/to/model.pt]
     python bench/audio_quality.py --measure docs/continue_piano.wav --prime-seconds 3   # one file
     python bench/audio_quality.py --corpora piano --sampling top_p=0.7 temperature=0.7 top_k=3 \
         --out bench/results/audio_sampling.json   # the other samplers of docs/results.md
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from genseq.codecs.audio import audio_files
from genseq.store import load_model
from genseq.tasks import continue_audio, lm_metrics

from common import ROOT, make_parser

CORPORA = ("speech", "piano")
FRAME, HOP = 512, 256
ACTIVE_DBFS = -60.0  # frames quieter than this are left out of the flatness average
TONAL_TOP = 0.05  # the strongest 5% of a frame's frequency bins
SILENT_DBFS, NOISE_FLATNESS = -50.0, 0.5


def dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-10))


def flatness(x: np.ndarray) -> float:
    """Mean spectral flatness over the frames with non-negligible energy (NaN if none)."""
    return spectral(active_spectra(x))[0]


def spectral(power: np.ndarray) -> tuple[float, float]:
    """(flatness, tonal share) of power spectra (frames, bins), averaged over the frames (NaN for
    none). The tonal share is the part of a frame's energy in its strongest 5% of bins: near 1
    for a few steady partials, about 0.2 for white noise."""
    if not len(power):
        return float("nan"), float("nan")
    top = max(1, round(TONAL_TOP * power.shape[1]))
    return (float(np.mean(np.exp(np.mean(np.log(power), 1)) / np.mean(power, 1))),
            float(np.mean(np.sort(power, 1)[:, -top:].sum(1) / power.sum(1))))


def active_spectra(x: np.ndarray) -> np.ndarray:
    """Power spectra (frames, bins) of the 512-sample frames of ``x`` above -60 dBFS."""
    if len(x) < FRAME:
        return np.zeros((0, FRAME // 2 + 1))
    frames = np.stack([x[s:s + FRAME] for s in range(0, len(x) - FRAME + 1, HOP)]).astype(np.float64)
    active = 20 * np.log10(np.maximum(np.sqrt(np.mean(frames ** 2, 1)), 1e-10)) > ACTIVE_DBFS
    return np.abs(np.fft.rfft(frames[active] * np.hanning(FRAME), axis=1)) ** 2 + 1e-20


def tonal_share(x: np.ndarray) -> float:
    """The mean share of an active frame's energy in its strongest 5% of bins (NaN if none)."""
    return spectral(active_spectra(x))[1]


def seconds_of(x: np.ndarray, rate: int) -> list[dict]:
    """RMS, flatness and tonal share of each whole second of ``x`` (one set of spectra each)."""
    rows = []
    for i in range(0, len(x) - rate + 1, rate):
        flat, tonal = spectral(active_spectra(x[i:i + rate]))
        rows.append({"dbfs": dbfs(x[i:i + rate]), "flatness": flat, "tonal": tonal})
    return rows


ONSET_RISE_DB, ONSET_BAND_HZ = 6.0, (60, 2000)


def onsets_per_second(x: np.ndarray, rate: int) -> float:
    """Struck notes a second, by spectral flux: frames (512 samples, hop 256) where the log power
    of the 60-2,000 Hz bins (floored 60 dB under the clip's peak) rose over the last two frames
    (32 ms) by at least 6 dB on average, the largest rise within three frames either side,
    above -45 dBFS, at most one per 96 ms. The run's ``sanity`` measures white noise and the
    plucked melody (16 notes in 6 s); the primes' own counts are beside each continuation's."""
    if len(x) < 3 * FRAME:
        return 0.0
    frames = np.stack([x[s:s + FRAME] for s in range(0, len(x) - FRAME + 1, HOP)]).astype(np.float64)
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1)) ** 2
    low, high = (round(hz * FRAME / rate) for hz in ONSET_BAND_HZ)
    log_power = 10 * np.log10(power[:, low:high] + 1e-10)
    log_power = np.maximum(log_power, log_power.max() - 60)
    rise = np.maximum(log_power[2:] - log_power[:-2], 0).mean(1)
    level = 10 * np.log10(np.mean(frames ** 2, 1) + 1e-20)[2:]
    count, last = 0, -10 ** 9
    for i in range(len(rise)):
        if (rise[i] >= ONSET_RISE_DB and rise[i] == rise[max(0, i - 3):i + 4].max() and level[i] > -45
                and i - last >= 6):
            count, last = count + 1, i
    return count / (len(x) / rate)


def karplus_strong(rate: int, notes: list[float], beat: float = 0.375, seed: int = 0) -> np.ndarray:
    """A plucked-string melody: each note a noise burst fed through a delay line of one period
    with a two-tap averaging filter (Karplus and Strong 1983)."""
    rng = np.random.default_rng(seed)
    out = []
    for freq in notes:
        period = max(2, round(rate / freq))
        line = list(rng.uniform(-1, 1, period))
        samples = []
        for i in range(round(beat * rate)):
            value = 0.996 * 0.5 * (line[i % period] + line[(i + 1) % period])
            samples.append(line[i % period])
            line[i % period] = value
        out.append(np.array(samples))
    return (0.5 * np.concatenate(out)).astype(np.float32)


def sine_melody(rate: int, notes: list[float], beat: float = 0.375) -> np.ndarray:
    t = np.arange(round(beat * rate)) / rate
    tone = [sum(np.sin(2 * np.pi * f * k * t) / k ** 2 for k in (1, 2, 3)) * np.exp(-3 * t) for f in notes]
    return (0.3 * np.concatenate(tone)).astype(np.float32)


MELODY = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6, 293.7, 349.2, 440.0, 349.2, 293.7, 246.9, 261.6, 392.0,
          329.6, 261.6]  # C major up and down, 16 beats of 0.375 s: 6 s


def outside_clips(corpus: str, rate: int) -> dict:
    """Clips genseq never trained on: melodies for the piano, an espeak-ng sentence for speech."""
    import shutil
    import subprocess
    import tempfile

    if corpus == "piano":
        return {"plucked": karplus_strong(rate, MELODY), "sines": sine_melody(rate, MELODY)}
    if not shutil.which("espeak-ng"):
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "espeak.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav),
                        "The quick brown fox jumps over the lazy dog while the band plays on the corner of the "
                        "street, and nobody seems to notice the rain."], check=True)
        from genseq.codecs.audio import AudioCodec
        return {"espeak": AudioCodec(rate).read(wav)}


def piano_clips(loaded) -> dict:
    """The piano's listening clips as ``loaded``'s codec reads them: the test chorales and the
    melodies from outside the corpus."""
    clips = {f"test/{p.name}": loaded.codec.read(p) for p in audio_files(ROOT / "corpora/audio/piano/test")}
    clips.update({f"outside/{k}": v for k, v in outside_clips("piano", loaded.codec.sample_rate).items()})
    return clips


def median(values) -> float | None:
    values = [v for v in values if not math.isnan(v)]
    return round(float(np.median(values)), 4) if values else None


BARS = {"piano": {"flatness": 0.01, "tonal": 0.9}, "speech": {"flatness": 0.015}}
QUIET_DBFS = -45.0


def listener(loaded, corpus: str, clips: dict, prime_s: float, seconds: float, takes: int, seed: int,
             **sampling) -> dict:
    """Each clip's first ``prime_s`` seconds continued ``takes`` times for ``seconds``: the medians
    of the per-second measures over every second of every take, the quietest second, and the
    prime's medians beside them."""
    rate = loaded.codec.sample_rate
    rows = {}
    for name, clip in clips.items():
        prime = clip[:round(prime_s * rate)]
        t = time.perf_counter()
        outs = continue_audio(loaded, prime, seconds, n=takes, seed=seed, **sampling)
        per = [sec for out in outs for sec in seconds_of(out, rate)]
        ref = seconds_of(prime, rate)
        row = {"prime_flatness": median(r["flatness"] for r in ref), "prime_tonal": median(r["tonal"] for r in ref),
               "flatness": median(r["flatness"] for r in per), "tonal": median(r["tonal"] for r in per),
               "quietest_dbfs": round(min(r["dbfs"] for r in per), 1),
               "prime_onsets_per_s": round(onsets_per_second(prime, rate), 2),
               "onsets_per_s": round(float(np.median([onsets_per_second(out, rate) for out in outs])), 2),
               "seconds_per_take": [[round(r["flatness"], 3) for r in seconds_of(out, rate)] for out in outs],
               "wall_s": round(time.perf_counter() - t, 1)}
        bars = BARS[corpus]
        row["meets_bars"] = bool(row["quietest_dbfs"] > QUIET_DBFS and row["flatness"] is not None
                                 and row["flatness"] <= bars["flatness"]
                                 and ("tonal" not in bars or (row["tonal"] or 0) >= bars["tonal"]))
        rows[name] = row
        print(f"    {name:<28} flatness {row['prime_flatness']} -> {row['flatness']}, tonal {row['prime_tonal']} -> "
              f"{row['tonal']}, quietest second {row['quietest_dbfs']} dBFS, onsets/s {row['prime_onsets_per_s']} -> "
              f"{row['onsets_per_s']} ({row['wall_s']} s)", flush=True)
    return {"prime_seconds": prime_s, "seconds": seconds, "takes": takes, "seed": seed, **sampling, "clips": rows}


def unigram_bits(codec, train_items, test_items) -> float:
    """Cross-entropy (bits per sample) of the test ids under add-one-smoothed train unigrams."""
    counts = np.bincount(codec.encode_stream(train_items).numpy(), minlength=codec.vocab_size) + 1.0
    logp = np.log2(counts / counts.sum())
    test = codec.encode_stream(test_items).numpy()
    return float(-logp[test].mean())


def nanmean(values) -> float | None:
    values = [v for v in values if not math.isnan(v)]
    return round(float(np.mean(values)), 4) if values else None


def health(loaded, folder: Path, clips: int, prime_s: float, seconds: float, seed: int) -> dict:
    rate = loaded.codec.sample_rate
    paths = [p for p in audio_files(folder) if len(loaded.codec.read(p)) >= 1.5 * rate][:clips]
    rows = []
    for path in paths:
        clip = loaded.codec.read(path)
        prime = clip[:round(prime_s * rate)]
        out = continue_audio(loaded, prime, seconds, n=1, temperature=1.0, seed=seed)[0]
        rows.append({"clip": path.name, "prime_dbfs": round(dbfs(prime), 2), "cont_dbfs": round(dbfs(out), 2),
                     "cont_last_second_dbfs": round(dbfs(out[-rate:]), 2),
                     "prime_flatness": round(flatness(prime), 4), "cont_flatness": round(flatness(out), 4)})
        print(f"    {path.name:<36} {rows[-1]}", flush=True)
    n = len(rows)
    return {
        "clips": n, "prime_seconds": prime_s, "continuation_seconds": seconds, "seed": seed,
        "prime_rms_dbfs": nanmean([r["prime_dbfs"] for r in rows]),
        "continuation_rms_dbfs": nanmean([r["cont_dbfs"] for r in rows]),
        "prime_flatness": nanmean([r["prime_flatness"] for r in rows]),
        "continuation_flatness": nanmean([r["cont_flatness"] for r in rows]),
        "fraction_silent": sum(r["cont_last_second_dbfs"] < SILENT_DBFS for r in rows) / n if n else None,
        "fraction_noise": sum((r["cont_flatness"] > NOISE_FLATNESS) for r in rows) / n if n else None,
        "per_clip": rows,
    }


def measure_file(path: str, prime_s: float) -> dict:
    """What a listener hears in a WAV that ``genseq continue`` wrote (the prime, then the
    continuation): each second of what follows the first ``prime_s`` seconds, and its notes a
    second. The README's description of docs/continue_piano.wav comes from here."""
    import soundfile

    wave, rate = soundfile.read(path, dtype="float32")
    after = wave[round(prime_s * rate):]
    seconds = seconds_of(after, rate)
    return {"file": str(path), "prime_seconds": prime_s,
            "flatness_per_second": [round(r["flatness"], 4) for r in seconds],
            "tonal_per_second": [round(r["tonal"], 3) for r in seconds],
            "dbfs_per_second": [round(r["dbfs"], 1) for r in seconds],
            "onsets_per_s": round(onsets_per_second(after, rate), 2)}


def sampling_setting(text: str) -> tuple[str, dict | None]:
    """``top_p=0.7`` or ``temperature=0.7,top_k=4`` -> (the text, the continue_audio options);
    ``own`` -> (``own``, None): what the model file says (its ``sampling``), as genseq continue does."""
    if text == "own":
        return text, None
    options = dict(part.split("=", 1) for part in text.split(","))
    return text, {k: int(v) if k == "top_k" else float(v) for k, v in options.items()}


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=PATH",
                        help="another model file to score (NAME speech-* or piano-*: that corpus only)")
    parser.add_argument("--model", action="append", default=[], metavar="CORPUS=PATH",
                        help="score and continue with this model file instead of the shipped one")
    parser.add_argument("--clips", type=int, default=8, help="continuations per corpus at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the long continuations")
    parser.add_argument("--takes", type=int, default=3, help="takes per clip of the long continuations")
    parser.add_argument("--long-clips", type=int, default=3, help="test clips per corpus continued at length")
    parser.add_argument("--sampling", type=sampling_setting, nargs="+",
                        default=[("own", None), ("top_k=0", {"top_k": 0})],
                        help="the long continuations' samplers, each NAME=VALUE[,NAME=VALUE] of temperature, "
                             "top_k, top_p, or own: the model file's own [default: own top_k=0]")
    parser.add_argument("--corpora", nargs="+", choices=CORPORA, default=list(CORPORA))
    parser.add_argument("--out", default=str(ROOT / "bench/results/audio_quality.json"))
    parser.add_argument("--measure", metavar="WAV", default=None,
                        help="measure this file's continuation (after --prime-seconds) and stop")
    parser.add_argument("--prime-seconds", type=float, default=3.0)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_file(args.measure, args.prime_seconds)))
        return
    torch.set_num_threads(1)
    started = time.perf_counter()
    extras = dict(e.split("=", 1) for e in args.extra)
    chosen = dict(m.split("=", 1) for m in args.model)

    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)
    sanity = {"white_noise_flatness": round(flatness(noise), 4), "white_noise_dbfs": round(dbfs(noise), 2),
              "white_noise_tonal": round(tonal_share(noise), 4),
              "sine_tonal": round(tonal_share(np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)), 4),
              "white_noise_onsets_per_s": round(onsets_per_second(noise, 16000), 2),
              "plucked_melody_onsets_per_s": round(onsets_per_second(karplus_strong(16000, MELODY), 16000), 2)}

    result = {"settings": vars(args), "flatness_frame": FRAME, "flatness_hop": HOP, "corpora": {}}
    for corpus in args.corpora:
        base = ROOT / "corpora/audio" / corpus
        loaded = load_model(chosen.get(corpus, corpus))
        codec = loaded.codec
        if "white_noise_mulaw_flatness" not in sanity:
            sanity["white_noise_mulaw_flatness"] = round(flatness(codec.decode(codec.encode_tensor(noise))), 4)
        train_items, test_items = codec.read_corpus(base / "train"), codec.read_corpus(base / "test")
        print(f"{corpus}: {len(train_items)} train clips, {len(test_items)} test clips "
              f"({sum(map(len, test_items)) / codec.sample_rate:.1f} s)", flush=True)
        bits = {"unigram": round(unigram_bits(codec, train_items, test_items), 4)}
        models = {name: path for name, path in extras.items()  # the table: unigram | extras | shipped
                  if not name.startswith(tuple(f"{c}-" for c in CORPORA)) or name.startswith(f"{corpus}-")}
        models[corpus] = str(loaded.path)
        scored = {}
        for name, path in models.items():
            t = time.perf_counter()
            model = loaded if name == corpus else load_model(path)
            m = lm_metrics(model.model, codec, test_items)
            bits[name] = round(m["bits_per_sample"], 4)
            scored[name] = {"path": path, "family": model.record["family"], "config": model.record["config"],
                            "parameters": sum(p.numel() for p in model.model.parameters()),
                            "bits_per_sample": round(m["bits_per_sample"], 4), "tokens": m["tokens"],
                            "kbit_per_second": round(m["kbit_per_second"], 3), "score_s": round(time.perf_counter() - t, 1)}
            print(f"  {name}: {bits[name]:.4f} bits/sample ({scored[name]['score_s']} s)", flush=True)
        print(f"  continuing test clips with {corpus}:", flush=True)
        result["corpora"][corpus] = {
            "test_clips": len(test_items), "test_seconds": round(sum(map(len, test_items)) / codec.sample_rate, 1),
            "bits_per_sample": bits, "models": scored,
            "health": health(loaded, base / "test", args.clips, 1.0, 3.0, args.seed)}
        long_clips = {f"test/{p.name}": codec.read(p) for p in audio_files(base / "test")
                      if len(codec.read(p)) >= 3.5 * codec.sample_rate}
        long_clips = dict(list(long_clips.items())[:args.long_clips])
        long_clips.update({f"outside/{k}": v for k, v in outside_clips(corpus, codec.sample_rate).items()})
        result["corpora"][corpus]["listener"] = {}
        for name, sampling in args.sampling:
            print(f"  {args.seconds:g} s continuations of 3 s primes, {args.takes} takes each, {name}:", flush=True)
            own = loaded.record.get("sampling") or {}
            result["corpora"][corpus]["listener"][name] = listener(
                loaded, corpus, long_clips, 3.0, args.seconds, args.takes, args.seed,
                **(own if sampling is None else sampling))
    result["sanity"] = sanity
    result["runtime_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")

    print("\nbits per sample on the test split (mu-law 8 bit: 8.0 is no model at all)")
    for corpus, r in result["corpora"].items():
        print(f"  {corpus:<8} " + " | ".join(f"{k} {v:.3f}" for k, v in r["bits_per_sample"].items()))
    print("\ncontinuations (1 s prime -> 3 s, T=1.0, seed 0)")
    print(f"  {'corpus':<8}{'clips':>6}{'RMS prime':>11}{'RMS cont':>10}{'flat prime':>12}{'flat cont':>11}"
          f"{'silent':>8}{'noise':>7}")
    for corpus, r in result["corpora"].items():
        h = {k: ("-" if v is None else round(v, 1 if "dbfs" in k else 3) if isinstance(v, float) else v)
             for k, v in r["health"].items()}
        print(f"  {corpus:<8}{h['clips']:>6}{h['prime_rms_dbfs']:>11}{h['continuation_rms_dbfs']:>10}"
              f"{h['prime_flatness']:>12}{h['continuation_flatness']:>11}{h['fraction_silent']:>8}{h['fraction_noise']:>7}")
    print(f"\nlong continuations (3 s prime -> {args.seconds:g} s, {args.takes} takes): median flatness and tonal "
          f"share per second, prime -> continuation; quietest second; onsets a second")
    for corpus, r in result["corpora"].items():
        for setting, run in r["listener"].items():
            for name, row in run["clips"].items():
                print(f"  {corpus:<8}{setting:<9}{name:<36}{row['prime_flatness']!s:>8} -> {row['flatness']!s:<8}"
                      f"{row['prime_tonal']!s:>8} -> {row['tonal']!s:<8}{row['quietest_dbfs']:>7} dBFS"
                      f"{row['prime_onsets_per_s']:>6} -> {row['onsets_per_s']:<5} onsets/s"
                      f"  {'meets the bars' if row['meets_bars'] else 'short of the bars'}")
    print(f"  sanity: {sanity}\nwrote {args.out} in {result['runtime_s']} s")


if __name__ == "__main__":
    main()
