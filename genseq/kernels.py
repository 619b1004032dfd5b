"""The frame model's per-token loops compiled by Numba, when it is installed (``pip install genseq[fast]``).

:func:`genseq.sampler.sample_share` steps the per-token tier of a
:class:`~genseq.models.frame.FrameLM` one token at a time, and priming a clip steps its GRU
(:meth:`~genseq.models.frame.FrameLM.prime`). In NumPy a token costs about twenty library calls
on arrays of a few hundred floats, so the calls, not the arithmetic, set the pace.
:func:`token_run` and :func:`gru_scan` are the same steps as plain loops that Numba compiles
(once per machine, cached on disk): a token costs a few microseconds of arithmetic.

Without Numba, or with ``GENSEQ_NO_NUMBA=1``, the NumPy loops run (``KERNELS`` is None). Both
read the same Gumbel noise and compute the same sums, in another order and with a tanh within
4e-7 of NumPy's, so they draw the same tokens but where two tokens' scores tie to the last bits
of a float. The functions are plain Python as well, so the tests run them against the NumPy
loops with or without Numba.
"""

import math
import os

import numpy as np

try:
    if os.environ.get("GENSEQ_NO_NUMBA"):
        raise ImportError("GENSEQ_NO_NUMBA is set")
    from numba import njit
    KERNELS = "numba"
except ImportError:  # the NumPy loops in genseq.sampler and genseq.models.frame run instead
    KERNELS = None
    njit = None


def compiled(**options):
    """Compile with Numba (float32 products fused into FMAs, divisions unchecked as in NumPy, so
    loops of them vectorise), caching the machine code beside this file or in the user's cache;
    where neither is writable, compile once per process. Without Numba: the plain function."""
    options = dict(nogil=True, fastmath={"contract"}, error_model="numpy") | options

    def wrap(function):
        if njit is None:
            return function
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return njit(**options)(function)
    return wrap


@compiled()
def token_run(first: int, end: int, steps: int, position: int, tokens, rows, offsets, tables, backs, gates,
              pos_gates, last_row: int, h, scores, noise, w_hh, b_hn, w1, b1, w2, b2, top_k: int) -> None:
    """Tokens ``first`` .. ``end - 1`` of every take, in place: for each, read the token before it
    (unless it is the first of the run's ``steps``) into the GRU, then draw it.

    The caller brings the frame tier up to date and draws a frame's noise before each call, so a
    call covers tokens that share a frame of noise and a frame tier's contexts.

    Args (float32 unless said, B takes, S token units, V tokens, F the frame, K the history,
    the weights as :class:`genseq.sampler.FastWeights` folds them):
        position: the position of token 0 (its column in the frame is ``position % F``).
        tokens: (K + steps, B) int64, time-major: the history, then the tokens drawn.
        rows: (K, 3, B) int64, token r's three gate rows in the lag tables at r % K.
        offsets: (3,) int64, the first row of each gate's block in a lag table.
        tables: (L, 3 (V + 1), S) the lags' gate tables (the first carries the gate biases);
            backs: (L,) int64, lag l of the token after token i is at slot (backs[l] + i) % K.
        gates: (F, 3, B, S) the frame's contexts through the input weights, per column.
        pos_gates: (3, grid, S) position gates (images), or (3, 0, S); ``last_row`` the
            first position of the last row.
        h: (B, S) the GRU state; scores: (B, V) the scaled logits less the last bias b2.
        noise: (F, B, V) Gumbel noise plus b2 for the frame's tokens (column i % F).
        w_hh: (3, S, S), b_hn: (S,), w1: (S, H), b1: (H,), w2: (H, V), b2: (V,).
        top_k: draw from the k likeliest tokens (0: all).
    """
    K, B = rows.shape[0], rows.shape[2]
    F, V, S, H = gates.shape[0], scores.shape[1], h.shape[1], w1.shape[1]
    # no array views inside the inner loops: each costs Numba two atomic reference counts
    gi = np.empty((3, B, S), np.float32)
    gh = np.empty((3, B, S), np.float32)
    x = np.empty((B, H), np.float32)
    best = np.empty(max(top_k, 1), np.float32)
    for i in range(first, end):
        if i > 0:  # read token i - 1 into the GRU, then the head
            r = i - 1
            t = position + r
            c, p = t % F, min(t, last_row + t % F)
            for b in range(B):
                for g in range(3):
                    rows[r % K, g, b] = tokens[K + r, b] + offsets[g]
                for g in range(3):
                    for s in range(S):
                        gi[g, b, s] = gates[c, g, b, s]
                    for l in range(tables.shape[0]):
                        row = rows[(backs[l] + r) % K, g, b]
                        for s in range(S):
                            gi[g, b, s] += tables[l, row, s]
                    if pos_gates.shape[1] > 0:
                        for s in range(S):
                            gi[g, b, s] += pos_gates[g, p, s]
            gru_step(h, gi, gh, w_hh, b_hn)
            for b in range(B):
                for u in range(H):
                    x[b, u] = b1[u]
            for k in range(S):
                for b in range(B):
                    hk = h[b, k]
                    for u in range(H):
                        x[b, u] += hk * w1[k, u]
            scores[:] = 0.0
            for u in range(H):
                for b in range(B):
                    xu = x[b, u]
                    if xu > 0.0:  # ReLU: the units at zero add nothing
                        for v in range(V):
                            scores[b, v] += xu * w2[u, v]
        for b in range(B):
            tokens[K + i, b] = draw(scores, noise, i % F, b, b2, top_k, best)
        if i + 1 == steps:
            break


@compiled()
def gru_scan(gates, h, w_hh, b_hn, out) -> None:
    """A GRU over T steps of every take, as :meth:`genseq.models.frame.FrameLM.prime` reads a
    prime: ``gates`` (T, 3, B, S), the input side with its biases, folded as
    :class:`genseq.sampler.FoldedGRU` folds it; ``h`` (B, S), updated in place; each step's
    state into ``out`` (T, B, S)."""
    gh = np.empty((3,) + h.shape, np.float32)
    for t in range(gates.shape[0]):
        gru_step(h, gates[t], gh, w_hh, b_hn)
        out[t] = h


@compiled(inline="always")
def gru_step(h, gi, gh, w_hh, b_hn) -> None:
    """:meth:`genseq.sampler.FoldedGRU.step`, in place on ``h`` (B, S), from the input side ``gi``
    (3, B, S) with ``gh`` (3, B, S) as scratch. The takes go in lockstep: a row of weights, once
    loaded, serves them all."""
    one, half = np.float32(1.0), np.float32(0.5)  # float32 constants keep the sums in float32
    B, S = h.shape
    gh[:] = 0.0
    for k in range(S):
        for g in range(3):
            for b in range(B):
                hk = h[b, k]
                for s in range(S):
                    gh[g, b, s] += hk * w_hh[g, k, s]
    for b in range(B):  # the sigmoid halves are in the weights
        for s in range(S):
            r_gate = tanh(gi[0, b, s] + gh[0, b, s]) + one
            z_gate = tanh(gi[1, b, s] + gh[1, b, s]) + one
            n = tanh((gh[2, b, s] + b_hn[s]) * r_gate + gi[2, b, s])
            h[b, s] = (h[b, s] - n) * z_gate * half + n


@compiled(inline="always")
def draw(scores, noise, j: int, b: int, bias, top_k: int, best) -> int:
    """Take b's token: the first of highest ``scores[b] + noise[j, b]``, among the ``top_k`` of
    highest ``scores[b] + bias`` (ties at the k-th all stay, as
    :func:`genseq.sampler.keep_top`) when 0 < top_k < V."""
    V = scores.shape[1]
    kth = -np.inf
    if 0 < top_k < V:
        best[:] = -np.inf  # the k highest so far, in falling order
        for v in range(V):
            logit = scores[b, v] + bias[v]
            if logit > best[top_k - 1]:
                m = top_k - 1
                while m > 0 and best[m - 1] < logit:
                    best[m] = best[m - 1]
                    m -= 1
                best[m] = logit
        kth = best[top_k - 1]
    choice, high = 0, -np.inf
    for v in range(V):
        value = scores[b, v] + noise[j, b, v]
        if value > high and scores[b, v] + bias[v] >= kth:
            choice, high = v, value
    return choice


@compiled(inline="always")
def tanh(x):
    """tanh of a float32 as x P(x^2) / Q(x^2), P and Q of degree 4, clamped where float32's tanh
    reaches 1: within 3.6e-7 of the exact value (NumPy's float32 tanh: 6e-8), and with no call
    in it, so a loop of them runs in vector registers: 768 in 0.41 us here, against 2.2 us for
    192 through libm's. The
    coefficients are a least-squares fit reweighted towards the largest error (Lawson's
    iteration), on 40,000 points of [0, 7.9053]; ``tests/test_kernels.py`` checks the bound."""
    x = min(max(x, np.float32(-7.9053111)), np.float32(7.9053111))
    y = x * x
    p = (((np.float32(1.5249130e-08) * y + np.float32(2.1896502e-05)) * y + np.float32(3.5712964e-03)) * y
         + np.float32(1.3444120e-01)) * y + np.float32(0.99999997)
    q = (((np.float32(8.5264566e-07) * y + np.float32(3.4110766e-04)) * y + np.float32(2.6162909e-02)) * y
         + np.float32(4.6777442e-01)) * y + np.float32(1.0)
    return x * p / q
