"""The compiled per-token loop (genseq.kernels): it draws what the NumPy loop draws, and its tanh
keeps its bound. Without Numba the same loop runs as plain Python, so these run either way."""

import numpy as np
import pytest
import torch

from genseq import kernels, sampler
from genseq.models import FrameConfig, FrameLM


def model(rows=0):
    torch.manual_seed(0)
    config = FrameConfig(vocab_size=20, frame=5, embed_dim=8, frame_hidden=16, token_hidden=8,
                         head_hidden=16, lags=[1, 2, 4], rows=rows)
    return FrameLM(config).eval()


def test_tanh_is_within_its_bound_of_the_exact_value():
    x = np.linspace(-12, 12, 200001, dtype=np.float32)
    run = np.vectorize(kernels.tanh, otypes=[np.float32])
    exact = np.tanh(x.astype(np.float64))
    assert np.abs(run(x) - exact).max() < 3.6e-7
    assert run(np.float32(0.0)) == 0 and abs(run(np.float32(30.0)) - 1) < 3.6e-7
    np.testing.assert_array_equal(run(-x), -run(x))


@pytest.mark.parametrize("rows,prime_length,temperature,top_k", [
    (0, 7, 1.0, 0), (0, 10, 1.0, 3), (0, 8, 0.0, 0), (4, 9, 1.0, 0), (4, 6, 0.8, 2)])
def test_the_compiled_loop_draws_what_the_numpy_loop_draws(monkeypatch, rows, prime_length, temperature, top_k):
    """Token for token, for audio and image models (position gates), primes that end anywhere in
    a frame, sampled, truncated and greedy."""
    compiled_loops = kernels.KERNELS or "python"  # without Numba, the kernel as plain Python
    m = model(rows)
    prime = torch.randint(20, (1, prime_length), generator=torch.Generator().manual_seed(1))
    logits, state = m.prime(prime.expand(3, -1))  # one prime: the takes differ by their noise alone
    weights = sampler.FastWeights(m, temperature)

    def takes(loops):
        monkeypatch.setattr(kernels, "KERNELS", loops)
        streams = np.random.SeedSequence(4).spawn(3)
        return sampler.sample_share(m, weights, sampler._np(logits[:, -1]), state, 60, temperature, streams,
                                    top_k=top_k)

    compiled, plain = takes(compiled_loops), takes(None)
    assert compiled.shape == (60, 3)
    np.testing.assert_array_equal(compiled, plain)
    assert len({tuple(column) for column in compiled.T}) == (1 if temperature == 0 else 3)


@pytest.mark.parametrize("rows", [0, 4])
def test_priming_through_the_compiled_scan_equals_the_numpy_loop(monkeypatch, rows):
    m = model(rows)
    prime = torch.randint(20, (2, 23), generator=torch.Generator().manual_seed(2))
    monkeypatch.setattr(kernels, "KERNELS", kernels.KERNELS or "python")
    with torch.inference_mode():
        compiled = m.prime(prime)
        monkeypatch.setattr(kernels, "KERNELS", None)
        plain = m.prime(prime)
    torch.testing.assert_close(compiled[0], plain[0], atol=2e-6, rtol=0)
    torch.testing.assert_close(compiled[1].token_h, plain[1].token_h, atol=2e-6, rtol=0)
