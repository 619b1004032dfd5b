"""The frame model: priming equals teacher forcing, causality in raster order, the fast sampler."""

import pytest
import torch

from genseq.generate import filter_logits, generate
from genseq.models import FrameConfig, FrameLM


def model(rows=0, seed=0):
    torch.manual_seed(seed)
    config = FrameConfig(vocab_size=20, frame=5, embed_dim=8, frame_hidden=16, token_hidden=8,
                         head_hidden=16, lags=[1, 2, 4, 5, 6], rows=rows, frame_layers=2)
    return FrameLM(config).eval()


@pytest.mark.parametrize("rows", [0, 4])
def test_a_long_prime_read_in_chunks_equals_one_call(rows):
    """prime() reads a long prime a chunk at a time, carrying the state: the same logits and
    state as one call, and a continuation from it steps as teacher forcing does."""
    m = model(rows)
    x = torch.randint(20, (2, 48))
    full, whole = m(x[:, :40])
    teacher, _ = m(x)
    seen = []
    m.prime_chunk = 10  # the first chunk 11 tokens, then 10
    logits, state = m.prime(x[:, :40], progress=seen.append)
    assert seen == [11, 21, 31, 40]
    torch.testing.assert_close(logits[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)
    for name in ("frame_h", "token_h", "context", "history"):
        torch.testing.assert_close(getattr(state, name), getattr(whole, name), rtol=1e-5, atol=1e-5)
    for t in range(40, 48):
        step_logits, state = m.step(x[:, t], state)
        torch.testing.assert_close(step_logits, teacher[:, t], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="continues at a frame's second position"):
        m(x[:, 40:], whole)


def test_beam_search_runs_on_the_frame_models_state():
    from genseq.generate import beam_search

    m = model()
    assert torch.equal(beam_search(m, [1, 2, 3], 12, batch=2, beam=1), generate(m, [1, 2, 3], 12, batch=2,
                                                                                temperature=0, top_k=1))
    assert beam_search(m, [1, 2, 3], 12, batch=2, beam=4).shape == (2, 12)


@pytest.mark.parametrize("rows", [0, 4])
def test_priming_then_stepping_equals_teacher_forcing(rows):
    m = model(rows)
    x = torch.randint(20, (3, 23))
    full, _ = m(x)
    for k in (1, 4, 5, 6, 11):  # primes that end inside a frame and on its edges
        logits, state = m(x[:, :k])
        assert torch.allclose(logits, full[:, :k], atol=1e-5)
        for t in range(k, 23):
            logits, state = m.step(x[:, t], state)
            assert torch.allclose(logits, full[:, t], atol=1e-5), (k, t)


@pytest.mark.parametrize("rows", [0, 4])
def test_inference_and_priming_equal_the_training_forward(rows):
    """Without gradients the token tier steps in NumPy, and prime() skips the head's earlier
    positions: same logits and state as torch's GRU."""
    m = model(rows)
    x = torch.randint(20, (3, 23))
    trained, state = m(x)
    with torch.inference_mode():
        fast, fast_state = m(x)
        last, prime_state = m.prime(x)
    torch.testing.assert_close(fast, trained, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_state.token_h, state.token_h, atol=1e-5, rtol=1e-5)
    assert last.shape == (3, 1, 20)
    torch.testing.assert_close(last[:, 0], fast[:, -1])
    torch.testing.assert_close(prime_state.token_h, fast_state.token_h)


def test_causal_in_raster_order():
    """Changing the pixel at one position changes no prediction made before it is seen."""
    m = model(rows=4)
    x = torch.randint(20, (1, 21))
    base, _ = m(x)
    for p in (1, 6, 12, 20):
        y = x.clone()
        y[0, p] = (y[0, p] + 1) % 20
        changed, _ = m(y)
        assert torch.allclose(changed[:, :p], base[:, :p], atol=1e-6), p
        assert not torch.allclose(changed[:, p:], base[:, p:]), p


@pytest.mark.parametrize("rows", [0, 4])
def test_fast_sampler_follows_the_model(rows):
    """The NumPy sampler's greedy path is the step-by-step greedy path."""
    m = model(rows)
    prime = torch.randint(20, (2, 7))
    logits, state = m(prime)
    fast = m.sample_fast(logits[:, -1], state, 30, temperature=0.0, seed=None)
    tokens, last = [], logits[:, -1]
    for _ in range(30):
        token = last.argmax(-1)
        tokens.append(token)
        last, state = m.step(token, state)
    assert torch.equal(fast, torch.stack(tokens, 1))


def test_sampling_matches_the_model_distribution():
    """Gumbel-max draws of the first token follow softmax(logits / temperature)."""
    m = model()
    prime = torch.tensor([3, 4, 5])
    logits, _ = m(prime[None])
    for temperature in (1.0, 0.5):
        draws = generate(m, prime, 1, batch=4000, temperature=temperature, seed=0)[:, 0]
        expected = (logits[0, -1] / temperature).softmax(-1)
        observed = torch.bincount(draws, minlength=20).float() / 4000
        assert (observed - expected).abs().max() < 0.03


def test_top_k_draws_follow_the_truncated_distribution_on_the_fast_path():
    """The fast sampler's top-k draws only the k likeliest tokens, in their renormalised
    proportions, at the first token and at every later one (checked by teacher forcing)."""
    m = model()
    prime = torch.tensor([3, 4, 5])
    logits, _ = m(prime[None])
    draws = m.sample_fast(logits[:, -1].expand(4000, -1), m(prime[None])[1].repeat(4000), 1, 1.0, seed=0,
                          workers=1, top_k=3)[:, 0]  # the fast sampler itself, not the step path
    expected = filter_logits(logits[0, -1:], top_k=3).softmax(-1)[0]
    observed = torch.bincount(draws, minlength=20).float() / 4000
    assert (observed - expected).abs().max() < 0.03 and observed[expected == 0].sum() == 0
    primed, state = m.prime(prime[None])
    takes = m.sample_fast(primed[:, -1].expand(3, -1), state.repeat(3), 60, 1.0, seed=1, workers=1, top_k=2)
    full = torch.cat([prime.expand(3, -1), takes], 1)
    forced, _ = m(full[:, :-1])
    ranks = (forced[:, 2:] > forced[:, 2:].gather(-1, full[:, 3:, None])).sum(-1)
    assert ranks.max() < 2  # each token is one of the two likeliest given its history
    assert not torch.equal(takes[0], takes[1])


def test_a_take_is_the_same_whatever_the_workers_and_the_takes_beside_it():
    """Each take has its own noise stream, so takes shared out among forked workers are the
    takes of one process, and take 0 of four is the single take of the same seed."""
    m = model()
    logits, state = m(torch.tensor([[1, 2, 3]]))
    single = m.sample_fast(logits[:, -1], state, 40, 1.0, seed=7, workers=1)
    four = dict(logits=logits[:, -1].expand(4, -1), state=state.repeat(4), steps=40, temperature=1.0, seed=7)
    alone = m.sample_fast(**four, workers=1)
    shared = m.sample_fast(**four, workers=3)
    assert torch.equal(alone, shared)
    assert torch.equal(single[0], alone[0])
    assert len({tuple(row) for row in alone.tolist()}) == 4
    assert torch.equal(m.sample_fast(**four, workers=1, top_k=3), m.sample_fast(**four, workers=3, top_k=3))


def test_a_failing_worker_is_reported():
    from genseq.workers import run_forked

    def fails(report):
        raise ValueError("no luck")
    assert run_forked([lambda report: 1, lambda report: 2]) == [1, 2]
    with pytest.raises(RuntimeError, match="ValueError: no luck"):
        run_forked([lambda report: 1, fails])

    def interrupted(report):  # a Ctrl-C that reached the worker: the parent stops as if it had one
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_forked([lambda report: 1, interrupted])


def test_seeded_samples_reproduce():
    m = model()
    a = generate(m, [1, 2, 3], 40, batch=3, seed=5)
    assert torch.equal(a, generate(m, [1, 2, 3], 40, batch=3, seed=5))
    assert not torch.equal(a, generate(m, [1, 2, 3], 40, batch=3, seed=6))
    assert not torch.equal(a[0], a[1])


def test_gumbel_noise_is_standard_gumbel():
    """The sampler's noise has the standard Gumbel law: mean Euler's gamma, variance pi^2 / 6,
    CDF exp(-exp(-x)), and no infinite draws."""
    import numpy as np

    from genseq.sampler import gumbel
    g = gumbel([np.random.default_rng(0).bit_generator], 200, 1000)[:, 0].astype(np.float64)
    assert g.shape == (200, 1000) and np.isfinite(g).all()
    assert abs(g.mean() - 0.5772) < 0.01 and abs(g.var() - np.pi ** 2 / 6) < 0.02
    for x in (-1.0, 0.0, 1.0, 3.0):
        assert abs((g <= x).mean() - np.exp(-np.exp(-x))) < 0.005


@pytest.mark.parametrize("prime_length", [3, 4])  # the two draws inside a frame, and across its edge
def test_pairs_of_draws_follow_the_model(prime_length):
    """The joint law of two consecutive draws is p(a) p(b | a): the sampler's state follows its
    own draws and the noise is fresh at every step (frame = 5, so prime 4 puts the frame tier
    between the two draws)."""
    m = model()
    prime = torch.arange(1, prime_length + 1)
    logits, state = m(prime[None])
    first = logits[0, -1].softmax(-1)
    second = torch.stack([m.step(torch.tensor([a]), state)[0][0].softmax(-1) for a in range(20)])
    expected = first[:, None] * second  # (a, b)
    n = 40000
    draws = generate(m, prime, 2, batch=n, seed=1)
    observed = torch.bincount(draws[:, 0] * 20 + draws[:, 1], minlength=400).view(20, 20).double() / n
    assert (observed - expected).abs().max() < 0.01
    chi2 = ((observed - expected) ** 2 / expected.clamp(min=1e-9)).sum() * n
    assert chi2 < 500  # 399 degrees of freedom: mean 399, sd 28


def test_workers_respect_a_containers_cpu_quota(tmp_path, monkeypatch):
    import os

    from genseq import workers

    allowed = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    monkeypatch.setattr(workers, "CPU_MAX", str(quota))
    quota.write_text("100000 100000\n")  # one CPU
    assert workers.available_cpus() == 1
    quota.write_text("250000 100000\n")  # two and a half CPUs: two workers, if the affinity allows
    assert workers.available_cpus() == min(2, allowed)
    quota.write_text("max 100000\n")  # no quota: the cores this process may run on
    assert workers.available_cpus() == allowed
    monkeypatch.setattr(workers, "CPU_MAX", str(tmp_path / "absent"))
    assert workers.available_cpus() == allowed
