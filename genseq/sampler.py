"""The frame model's fast sampler: the per-token tier stepped in NumPy or compiled, exact Gumbel-max draws.

A :class:`~genseq.models.frame.FrameLM` spends almost all of its generation time in the small
per-token tier, one token at a time. Here that loop runs on float32 NumPy arrays with the model's
weights folded for it (:class:`FastWeights`, :class:`FoldedGRU`), the noise drawn a frame at a
time, and independent takes shared out among forked workers (:mod:`genseq.workers`). The model
file holds the ``nn.Module``; this module holds how to sample it fast.
"""

from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch

from genseq import kernels
from genseq.workers import available_cpus, run_forked


@torch.inference_mode()
def sample_frames(model, logits: torch.Tensor, state, steps: int, temperature: float, seed: int | None,
                  progress=None, workers: int | None = None, top_k: int = 0) -> torch.Tensor:
    """``steps`` tokens after a primed ``state`` (whose next-token logits are ``logits``),
    sampled exactly by Gumbel-max at ``temperature`` (0: greedy), from the ``top_k`` likeliest
    tokens of each step when given (0: all). Returns (B, steps) ids.

    Args:
        model: a :class:`~genseq.models.frame.FrameLM`.
        logits: (B, V) the next-token logits after the prime.
        state: the :class:`~genseq.models.frame.FrameState` after the prime, B takes.
        progress: optional callable given the tokens done per take so far.
        workers: processes to share the takes among (default: the CPU cores this process may use).

    Returns:
        (B, steps) int64 ids.

    With Numba installed the per-token steps run compiled (:func:`genseq.kernels.token_run`, a
    run of tokens per call). Otherwise a token costs about twenty NumPy calls on (3, B, S)
    gate-major arrays (each gate a contiguous block, so nothing is sliced across rows). Either
    way every input-side product is folded into lookup tables (lags, positions, gate biases)
    or done once per frame (contexts), and the frame tier runs once per frame, its products in
    torch, one per whole matrix.

    Takes are independent, so several are shared out among ``workers`` processes (default:
    the CPU cores this process may use; forked, Linux only), each on one thread. Each take
    draws its noise a frame at a time from its own stream, spawned from ``seed``: a take is
    the same whatever the number of workers or of takes beside it.
    """
    weights = FastWeights(model, temperature)
    state = replace(state, frame_h=state.frame_h.cpu(), token_h=state.token_h.cpu(), context=state.context.cpu(),
                    history=state.history.cpu())  # forked workers must not touch a GPU
    B = state.history.shape[0]
    streams = np.random.SeedSequence(seed).spawn(B)
    shares = np.array_split(np.arange(B), max(1, min(B, workers or available_cpus())))
    logits = _np(logits)
    if kernels.KERNELS and len(shares) > 1:  # compile (or load) the kernel once, before the workers fork
        sample_share(model, weights, logits[:1], state.rows([0]), 2, temperature, np.random.SeedSequence(0).spawn(1),
                     top_k=top_k)
    jobs = [(lambda report, i=index: sample_share(model, weights, logits[i], state.rows(i), steps, temperature,
                                                  [streams[k] for k in i], report, top_k))
            for index in shares]
    tokens = np.concatenate(run_forked(jobs, progress), axis=1)
    if progress is not None:
        progress(steps)
    return torch.from_numpy(np.ascontiguousarray(tokens.T).astype(np.int64))



def sample_share(model, w: "FastWeights", logits: np.ndarray, state, steps: int, temperature: float,
                 streams: list, progress=None, top_k: int = 0) -> np.ndarray:
    """The sampling loop for some takes: their tokens, (steps, takes), as small integers. The
    compiled loop runs when :data:`genseq.kernels.KERNELS` says it can, else the NumPy one."""
    Fr, K = model.frame, model.history_len
    B, V = state.history.shape[0], model.config.vocab_size
    tokens = np.empty((K + steps, B), np.int64)  # the history, then what is generated; time-major
    tokens[:K] = state.history.cpu().numpy().T
    frame_h = [h.copy() for h in _np(state.frame_h)]
    h = _np(state.token_h)[0].copy()
    gates = w.context_gates(_np(state.context))
    # lag j of input i is token K + i + 1 - j; ``rows`` holds the last K tokens as their three
    # gates' rows of a lag table (token r at r % K; ``take`` along the first axis is the
    # cheapest gather NumPy has); the first table carries the gate biases
    rows = np.empty((K, 3, B), np.int64)
    np.add(tokens[:K, None], w.gate_offsets, out=rows)
    # lag l of the token after token i is in ``rows`` at (backs[l] + i) % K
    backs = np.array([K + 1 - lag for lag in model.lags], np.int64)
    (table, back), *more = zip(w.tables, backs)
    gru, head = w.token, w.head
    # the noise carries the head's last bias
    scores, t = (logits * w.scale - w.b2).astype(np.float32), state.position
    bits = [np.random.PCG64(stream) for stream in streams]

    def draw_noise() -> np.ndarray:  # one frame's noise, (F, B, V), plus the head's last bias
        if temperature <= 0:  # greedy: no noise
            return np.broadcast_to(w.b2, (Fr, B, V))
        noise = gumbel(bits, Fr, V)
        noise += w.b2
        return noise

    def numpy_loop():  # about twenty NumPy calls a token
        nonlocal gates, h, scores, t
        for i in range(steps):
            j = i % Fr
            if j == 0:
                noise = draw_noise()  # a frame's noise at once
            if 0 < top_k < V and temperature > 0:
                keep_top(scores, w.b2, top_k)
            scores += noise[j]
            scores.argmax(-1, out=tokens[K + i])
            if i + 1 == steps:
                break
            np.add(tokens[K + i], w.gate_offsets, out=rows[i % K])
            if progress is not None and (i + 1) % 1024 == 0:
                progress(i + 1)
            column = t % Fr
            if column == 0:  # the token completes a frame: the frame tier reads it
                gates = w.context_gates(w.frame_step(tokens[K + i + 1 - Fr:K + i + 1], frame_h))
            gi = table.take(rows[(back + i) % K], 0)
            gi += gates[column]
            for extra, lag_back in more:
                gi += extra.take(rows[(lag_back + i) % K], 0)
            if w.has_positions:
                gi += w.position_gates(t)
            h = gru.step(gi, np.matmul(h, gru.w_hh), h)
            scores = head(h)
            t += 1

    def compiled_loop():  # the same steps, a run of tokens per call to kernels.token_run
        nonlocal gates
        offsets, k = w.gate_offsets[:, 0], top_k if temperature > 0 else 0
        i, reported = 0, 0
        while i < steps:
            if i % Fr == 0:
                noise = np.ascontiguousarray(draw_noise())
            if i > 0 and (t + i - 1) % Fr == 0:  # token i - 1 completed a frame: the frame tier reads it
                gates = w.context_gates(w.frame_step(tokens[K + i - Fr:K + i], frame_h))
            # up to the next frame of noise, or to the token after the next that completes a frame
            end = min(steps, i + Fr - i % Fr, i + 1 + (Fr - (t + i) % Fr) % Fr)
            kernels.token_run(i, end, steps, t, tokens, rows, offsets, w.tables, backs, gates, w.position_table,
                              w.last_row, h, scores, noise, gru.w_hh, gru.b_hn, w.w1, w.b1, w.w2, w.b2, k)
            i = end
            if progress is not None and i - reported >= 1024:
                progress(i)
                reported = i

    with one_torch_thread():  # the products are small: more threads spin more than they help
        compiled_loop() if kernels.KERNELS else numpy_loop()
    return tokens[K:].astype(np.uint16 if V <= 1 << 16 else np.int64)  # small through a pipe


def keep_top(scores: np.ndarray, bias: np.ndarray, k: int) -> None:
    """Rule out, in place, every token of each row of ``scores`` (B, V) but the ``k`` whose
    ``scores + bias`` (the scaled logits) are highest (ties at the k-th all stay, as
    :func:`genseq.generate.filter_logits` keeps them)."""
    logits = scores + bias
    kth = np.partition(logits, -k, axis=-1)[:, -k, None]
    scores[logits < kth] = -np.inf


def gumbel(bits: list, frames: int, V: int) -> np.ndarray:
    """Standard Gumbel noise -log(-log u), float32, (frames, len(bits), V): take b's from bit
    generator b, frame after frame. Each draw takes 23 random bits, which fill the mantissa of a
    float in [1, 2); less (1 - 2^-24) it is u, strictly inside (0, 1), so the noise is finite.
    It is cheaper than NumPy's float32 exponential draws, which matters at V draws per take and
    step."""
    half = (V + 1) // 2  # two draws per 64 random bits
    raw = np.empty((frames, len(bits), half), np.uint64)
    for take, generator in enumerate(bits):
        raw[:, take] = generator.random_raw(frames * half).reshape(frames, half)
    u = raw.view(np.uint32)[..., :V] >> 9
    u |= np.uint32(0x3F800000)  # exponent of 1.0
    u = u.view(np.float32)
    u -= np.float32(1 - 2.0 ** -24)
    np.log(u, out=u)
    np.negative(u, out=u)
    np.log(u, out=u)
    np.negative(u, out=u)
    return u


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _mm(x: np.ndarray, w: torch.Tensor) -> np.ndarray:
    """x @ w through torch: at frame-tier sizes its small-batch products beat NumPy's BLAS
    (``bench/weight_products.py``: x3 at 4 and 8 rows, the same at one)."""
    return torch.matmul(torch.from_numpy(x), w).numpy()


def _gates(x: np.ndarray, w: torch.Tensor) -> np.ndarray:
    """x (B, in) @ w (in, 3S) as gate-major gates (3, B, S). One product on the whole matrix, then
    a small copy: faster than three products on its gate blocks (``bench/weight_products.py``)."""
    out = _mm(x, w)
    return np.ascontiguousarray(out.reshape(len(x), 3, -1).transpose(1, 0, 2))


def flat_gates(w: np.ndarray) -> np.ndarray:
    """(3, in, S) gate-major -> (in, 3S), the gates side by side: :func:`gate_major` undone."""
    return np.ascontiguousarray(np.moveaxis(w, 0, -2).reshape(w.shape[1], -1))


def gate_major(w: np.ndarray) -> np.ndarray:
    """(..., 3S) -> (3, ..., S): each gate's block contiguous, so the step slices nothing."""
    *lead, width = w.shape
    return np.ascontiguousarray(np.moveaxis(w.reshape(*lead, 3, width // 3), -2, 0))


@contextmanager
def one_torch_thread():
    """Torch on one thread inside the block. Frame-tier products are too small to split: a second
    thread gains little on an idle machine and spins costly on a busy one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class FoldedGRU:
    """One GRU layer's weights for NumPy stepping, gate-major, with sigmoid(x) = (1 + tanh(x/2)) / 2
    folded in: the r and z columns of the input side are halved (their hidden biases moved
    there), and the whole hidden side is halved, so its n block takes (1 + tanh) in place of 2r.
    """

    def __init__(self, w_ih: torch.Tensor, b_ih: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor):
        S = w_hh.shape[1]
        half = np.ones(3 * S, np.float32)
        half[:2 * S] = 0.5
        b_hh = _np(b_hh)
        b_in = _np(b_ih) * half
        b_in[:2 * S] += 0.5 * b_hh[:2 * S]
        self.w_ih = _np(w_ih).T * half  # (in, 3S), for folding into tables
        self.b_ih = gate_major(b_in)[:, None]  # (3, 1, S)
        self.w_hh = gate_major(_np(w_hh).T * 0.5)  # (3, S, S): np.matmul(h, w_hh) is (3, B, S)
        self.b_hn = 0.5 * b_hh[2 * S:]

    def step(self, gi: np.ndarray, gh: np.ndarray, h: np.ndarray) -> np.ndarray:
        """The new state (B, S) from the folded input-side gates ``gi`` (3, B, S, bias included)
        and the hidden-side products ``gh = np.matmul(h, w_hh)`` (3, B, S); both are overwritten."""
        rz = gi[:2]
        rz += gh[:2]
        np.tanh(rz, out=rz)
        rz += 1.0  # 2 sigmoid: the halves are in the weights
        n = gh[2]
        n += self.b_hn
        n *= rz[0]
        n += gi[2]
        np.tanh(n, out=n)
        h = h - n
        h *= rz[1]
        h *= 0.5
        h += n
        return h


class FastWeights:
    """A FrameLM's weights folded for :func:`sample_frames`, as float32 arrays: lag and
    position embeddings pushed through the token GRU's input weights into gate tables, the
    temperature folded into the head's last layer. The frame tier's matrices are torch tensors
    (over the same memory): at these sizes torch's small-batch products beat NumPy's BLAS."""

    def __init__(self, model, temperature: float = 1.0):
        c, rnn = model.config, model.token_rnn
        self.S, self.frame = c.token_hidden, c.frame
        self.token = FoldedGRU(rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.weight_hh_l0, rnn.bias_hh_l0)
        w_ih = self.token.w_ih
        lag_gates = gate_major(_np(model.lag_embed.weight) @ w_ih)  # (3, lags x (V + 1), S)
        tables = np.split(lag_gates, len(model.lags), axis=1)
        tables[0] = tables[0] + self.token.b_ih  # every step adds the first table: the gate biases ride in it
        # each (3 x (V + 1), S): gate g of id v is row g (V + 1) + v
        self.tables = np.stack([t.reshape(-1, self.S) for t in tables])  # (lags, 3 (V + 1), S)
        self.gate_offsets = np.arange(3)[:, None] * (c.vocab_size + 1)  # (3, 1)
        # images: row and column features, folded like the lags, (3, grid, S); none for audio
        self.position_table, self.last_row = np.zeros((3, 0, self.S), np.float32), 0
        self.has_positions = bool(c.rows)
        if c.rows:
            grid = c.rows * c.frame  # row features stop changing at the last row
            positions = _np(model._positions(torch.arange(grid, device=model.embed.weight.device)))
            self.position_table = gate_major(positions @ w_ih)
            self.last_row = grid - c.frame
        self.scale = 1.0 / temperature if temperature > 0 else 1.0
        self.w1, self.b1 = _np(model.head[0].weight).T.copy(), _np(model.head[0].bias)
        self.w2 = np.ascontiguousarray(_np(model.head[2].weight).T * self.scale)
        self.b2 = _np(model.head[2].bias) * self.scale
        self.embed = _np(model.embed.weight)
        self.frame_in, self.frame_in_b = torch.from_numpy(_np(model.frame_in.weight).T.copy()), _np(model.frame_in.bias)
        frnn = model.frame_rnn
        self.frame_layers = [FoldedGRU(*(getattr(frnn, f"{name}_l{k}") for name in
                                         ("weight_ih", "bias_ih", "weight_hh", "bias_hh")))
                             for k in range(c.frame_layers)]
        self.frame_torch = [(torch.from_numpy(g.w_ih), torch.from_numpy(flat_gates(g.w_hh))) for g in self.frame_layers]
        self.frame_out = torch.from_numpy(_np(model.frame_out.weight).T.copy())
        self.frame_out_b = _np(model.frame_out.bias)
        self.context_w = torch.from_numpy(w_ih)

    def position_gates(self, t: int) -> np.ndarray:
        """Position t's gates, (3, 1, S)."""
        return self.position_table[:, min(t, self.last_row + t % self.frame), None]

    def head(self, h: np.ndarray) -> np.ndarray:
        """Token-tier outputs (B, S) -> logits over temperature (B, V), less the last bias ``b2``
        (the sampler adds it with the noise, once per frame)."""
        x = h @ self.w1
        x += self.b1
        np.maximum(x, 0.0, out=x)
        return x @ self.w2

    def context_gates(self, context: np.ndarray) -> np.ndarray:
        """Contexts (B, F, S) -> their products with the token GRU's folded input weights, per
        position (F, 3, B, S); the biases are in the first lag table."""
        B = len(context)
        gates = _mm(context.reshape(B * self.frame, self.S), self.context_w)  # (B x F, 3S)
        return np.ascontiguousarray(gates.reshape(B, self.frame, 3, self.S).transpose(1, 2, 0, 3))

    def frame_step(self, frame: np.ndarray, frame_h: list) -> np.ndarray:
        """Read one frame, ids (F, B) time-major, updating ``frame_h`` (one (B, H) per layer) in
        place; return the next frame's contexts (B, F, S)."""
        B = frame.shape[1]
        x = _mm(self.embed[frame.T].reshape(B, -1), self.frame_in)
        x += self.frame_in_b
        np.maximum(x, 0.0, out=x)
        for k, (gru, (w_ih, w_hh)) in enumerate(zip(self.frame_layers, self.frame_torch)):
            gi = _gates(x, w_ih)
            gi += gru.b_ih
            frame_h[k] = x = gru.step(gi, _gates(frame_h[k], w_hh), frame_h[k])
        out = _mm(x, self.frame_out)
        out += self.frame_out_b
        return out.reshape(B, self.frame, self.S)
