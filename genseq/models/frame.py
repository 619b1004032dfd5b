"""A two-tier autoregressive RNN over frames of tokens (after SampleRNN, Mehri et al. 2017).

An upper **frame tier** (a GRU) reads the sequence F tokens at a time and hands each of the F
positions of the next frame its own context vector. A small **token tier** (a GRU of a few dozen
units, as in WaveRNN, Kalchbrenner et al. 2018) runs once per token on that context, the last few
tokens (``lags``) and, for images, the row and column of the pixel, and a two-layer head gives the
logits. F = 16 samples serves audio; F = one image row serves sprites, where lag F is the pixel
above and the frame tier has seen every row above.

The heavy frame tier runs once per F tokens, so per-token work is the small tier's: generation
runs it in a lean NumPy loop (:meth:`FrameLM.sample_fast`) with exact Gumbel-max sampling, faster
than real time for 16 kHz audio on one CPU thread.

Contract, as for :class:`genseq.models.rnn.RNNLM`: ``forward(tokens)`` gives the logits for the
token after each position and the state after the last one; ``step(token, state)`` advances one
token. The token predicted at position t has index t in the frame grid: frame t // F, column t % F.
"""

import multiprocessing
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genseq.models.rnn import next_token_loss


@dataclass
class FrameConfig:
    vocab_size: int
    frame: int = 16  # F: tokens per frame (16 samples; one row of pixels)
    embed_dim: int = 32  # per-token embedding read by the frame tier
    frame_hidden: int = 512
    frame_layers: int = 1
    token_hidden: int = 64  # the per-token GRU
    head_hidden: int = 256
    lags: list = field(default_factory=lambda: [1, 2, 3, 4])  # earlier tokens the token tier sees
    rows: int = 0  # > 0: images of rows x frame pixels, with row and column embeddings
    dropout: float = 0.0
    eval_window: int = 16000  # tokens per scored window of a stream (images: one image)


@dataclass
class FrameState:
    frame_h: torch.Tensor  # (L, B, H) after the frames completed so far
    token_h: torch.Tensor  # (1, B, S)
    context: torch.Tensor  # (B, F, S) the current frame's per-position contexts
    history: torch.Tensor  # (B, K) the last K input tokens, pad id before the start
    position: int  # inputs consumed so far

    def repeat(self, batch: int) -> "FrameState":
        """This batch-of-one state copied ``batch`` times."""
        return FrameState(self.frame_h.expand(-1, batch, -1).contiguous(),
                          self.token_h.expand(-1, batch, -1).contiguous(),
                          self.context.expand(batch, -1, -1).contiguous(),
                          self.history.expand(batch, -1).contiguous(), self.position)

    def rows(self, index: np.ndarray) -> "FrameState":
        """The state of takes ``index`` alone."""
        index = torch.as_tensor(index, device=self.history.device)
        return FrameState(self.frame_h[:, index], self.token_h[:, index], self.context[index],
                          self.history[index], self.position)


class FrameLM(nn.Module):
    family = "frame"

    def __init__(self, config: FrameConfig):
        super().__init__()
        self.config = c = config
        self.frame = c.frame
        self.pad = c.vocab_size  # the id of "before the start"
        self.lags = [int(j) for j in c.lags]
        if not self.lags or min(self.lags) < 1:
            raise ValueError("lags must be positive")
        self.history_len = max(max(self.lags), c.frame)
        S = c.token_hidden
        self.embed = nn.Embedding(c.vocab_size + 1, c.embed_dim)
        self.frame_in = nn.Linear(c.frame * c.embed_dim, c.frame_hidden)
        self.frame_rnn = nn.GRU(c.frame_hidden, c.frame_hidden, c.frame_layers, batch_first=True,
                                dropout=c.dropout if c.frame_layers > 1 else 0.0)
        self.frame_out = nn.Linear(c.frame_hidden, c.frame * S)
        self.lag_embed = nn.Embedding(len(self.lags) * (c.vocab_size + 1), S)
        if c.rows:
            self.row_embed = nn.Embedding(c.rows, S)
            self.col_embed = nn.Embedding(c.frame, S)
        self.token_rnn = nn.GRU(S, S, batch_first=True)
        self.head = nn.Sequential(nn.Linear(S, c.head_hidden), nn.ReLU(), nn.Linear(c.head_hidden, c.vocab_size))
        self.drop = nn.Dropout(c.dropout)

    # -- pieces shared by forward and step ---------------------------------------------------

    def _frames(self, frames: torch.Tensor, frame_h):
        """frames: (B, n, F) ids -> the frame tier's top outputs (B, n, H) and new state."""
        x = self.embed(frames).flatten(2)
        return self.frame_rnn(self.drop(torch.relu(self.frame_in(x))), frame_h)

    def _contexts(self, top: torch.Tensor) -> torch.Tensor:
        """Frame-tier outputs (B, n, H) -> per-position contexts of the next frames (B, n, F, S)."""
        return self.frame_out(self.drop(top)).unflatten(-1, (self.frame, self.config.token_hidden))

    def _lag_ids(self, lagged: torch.Tensor) -> torch.Tensor:
        """(..., n_lags) ids -> rows of the shared lag table."""
        offsets = torch.arange(len(self.lags), device=lagged.device) * (self.config.vocab_size + 1)
        return lagged + offsets

    def _positions(self, index: torch.Tensor) -> torch.Tensor | float:
        """Row and column features of grid indices (T,) -> (T, S), or 0 without rows."""
        if not self.config.rows:
            return 0.0
        rows = (index // self.frame).clamp(max=self.config.rows - 1)
        return self.row_embed(rows) + self.col_embed(index % self.frame)

    def initial_state(self, batch: int, device) -> FrameState:
        c = self.config
        frame_h = torch.zeros(c.frame_layers, batch, c.frame_hidden, device=device)
        return FrameState(frame_h, torch.zeros(1, batch, c.token_hidden, device=device),
                          self._contexts(frame_h[-1:].transpose(0, 1))[:, 0],
                          torch.full((batch, self.history_len), self.pad, dtype=torch.long, device=device), 0)

    # -- the two paths -----------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, state: FrameState | None = None, last_only: bool = False):
        """tokens: (B, T) ids from the start of a sequence -> logits (B, T, V), state; with
        ``last_only`` the logits of the last position alone, (B, 1, V) (see :meth:`prime`).

        Only a fresh start is supported (``state`` must be None): windows and images are scored
        from the start; generation continues with :meth:`step`.
        """
        if state is not None:
            raise ValueError("FrameLM.forward starts from the beginning; continue with step()")
        B, T = tokens.shape
        K, Fr = self.history_len, self.frame
        start = self.initial_state(B, tokens.device)
        padded = torch.cat([start.history, tokens], 1)
        lagged = torch.stack([padded[:, K + 1 - j:K + 1 - j + T] for j in self.lags], -1)
        x = self.lag_embed(self._lag_ids(lagged)).sum(-2)
        n = (T - 1) // Fr  # frames whose tokens (the targets of positions 0 .. nF-1) are all known
        top, frame_h = start.frame_h[-1:].transpose(0, 1), start.frame_h
        if n:
            read, frame_h = self._frames(tokens[:, 1:1 + n * Fr].reshape(B, n, Fr), frame_h)
            top = torch.cat([top, read], 1)
        contexts = self._contexts(top)  # (B, n + 1, F, S): frame f's from the frames before it
        x = x + contexts.flatten(1, 2)[:, :T] + self._positions(torch.arange(T, device=tokens.device))
        hidden, token_h = self._token_tier(self.drop(x), start.token_h)
        logits = self.head(self.drop(hidden[:, -1:] if last_only else hidden))
        state = FrameState(frame_h, token_h, contexts[:, -1], padded[:, -K:], T)
        return logits, state

    def prime(self, tokens: torch.Tensor):
        """What generation needs of a prime: the next-token logits (B, 1, V) and the state, without
        the head's work at every earlier position."""
        return self(tokens, last_only=True)

    def _token_tier(self, x: torch.Tensor, h0: torch.Tensor):
        """The token GRU over inputs x (B, T, S) from h0 (1, B, S). Without gradients on the CPU it
        steps in NumPy (:class:`FoldedGRU`), faster than torch's loop: priming 1 s of audio is
        16,000 steps (``prime_s`` in ``bench/audio_speed.py``)."""
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
            return self.token_rnn(x, h0)
        rnn, (B, T, S) = self.token_rnn, x.shape
        gru = FoldedGRU(rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.weight_hh_l0, rnn.bias_hh_l0)
        gates = _gate_major(x.numpy().reshape(B * T, S) @ gru.w_ih).reshape(3, B, T, S)
        gates = np.ascontiguousarray(gates.transpose(2, 0, 1, 3))  # (T, 3, B, S): one block per step
        gates += gru.b_ih
        out = np.empty((T, B, S), np.float32)
        h = h0[0].numpy().copy()
        with one_torch_thread():
            for t in range(T):
                h = out[t] = gru.step(gates[t], np.matmul(h, gru.w_hh), h)
        return torch.from_numpy(out).transpose(0, 1), torch.from_numpy(h[None].copy())

    def step(self, token: torch.Tensor, state: FrameState):
        """token: (B,) the next input -> logits (B, V) for the token after it, and the new state."""
        t = state.position
        history = torch.cat([state.history[:, 1:], token[:, None]], 1)
        frame_h, context = state.frame_h, state.context
        if t % self.frame == 0:  # the token completes a frame: the frame tier reads it
            top, frame_h = self._frames(history[:, None, -self.frame:], frame_h)
            context = self._contexts(top)[:, 0]
        lagged = history[:, [self.history_len - j for j in self.lags]]
        x = self.lag_embed(self._lag_ids(lagged)).sum(-2) + context[:, t % self.frame]
        x = x + self._positions(torch.tensor([t], device=token.device))
        hidden, token_h = self.token_rnn(x[:, None], state.token_h)
        return self.head(hidden[:, 0]), FrameState(frame_h, token_h, context, history, t + 1)

    def loss(self, batch: torch.Tensor, step: int = 0) -> dict:
        return next_token_loss(self, batch)

    @torch.inference_mode()
    def stream_nll(self, stream: torch.Tensor, batch: int = 16) -> tuple[float, int]:
        """Total NLL (nats) of a stream scored in windows from a fresh start, and the number of
        tokens scored. Images: one window per image (start id + pixels), the start id unscored.
        Audio: windows of ``eval_window`` predictions, each token after the first scored once."""
        device = next(self.parameters()).device
        stream = stream.long()
        if self.config.rows:
            length = self.config.rows * self.frame + 1
            windows = list(stream.view(-1, length))
        else:
            w = self.config.eval_window
            windows = [stream[s:s + w + 1] for s in range(0, max(1, len(stream) - 1), w)]
            windows = [win for win in windows if len(win) > 1]
        total, count = 0.0, 0
        for length in sorted({len(win) for win in windows}):
            same = [win for win in windows if len(win) == length]
            for start in range(0, len(same), batch):
                x = torch.stack(same[start:start + batch]).to(device)
                logits, _ = self(x[:, :-1])
                total += F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="sum").item()
                count += x[:, 1:].numel()
        return total, count

    # -- fast generation -----------------------------------------------------------------------

    @torch.inference_mode()
    def sample_fast(self, logits: torch.Tensor, state: FrameState, steps: int, temperature: float,
                    seed: int | None, progress=None, workers: int | None = None) -> torch.Tensor:
        """``steps`` tokens after a primed ``state`` (whose next-token logits are ``logits``),
        sampled exactly by Gumbel-max at ``temperature`` (0: greedy). Returns (B, steps) ids.

        A token costs about twenty NumPy calls on (3, B, S) gate-major arrays (each gate a
        contiguous block, so nothing is sliced across rows), with every input-side product
        folded into lookup tables (lags, positions, gate biases) or done once per frame
        (contexts); the frame tier runs once per frame, its products in torch. This is what makes
        audio faster than real time (``bench/audio_speed.py``).

        Takes are independent, so several are shared out among ``workers`` processes (default:
        the CPU cores this process may use; forked, Linux only), each on one thread. Each take
        draws its noise a frame at a time from its own stream, spawned from ``seed``: a take is
        the same whatever the number of workers or of takes beside it.
        """
        weights = FastWeights(self, temperature)
        state = FrameState(state.frame_h.cpu(), state.token_h.cpu(), state.context.cpu(), state.history.cpu(),
                           state.position)  # forked workers must not touch a GPU
        B = state.history.shape[0]
        streams = np.random.SeedSequence(seed).spawn(B)
        shares = np.array_split(np.arange(B), max(1, min(B, workers or available_cpus())))
        logits = _np(logits)
        jobs = [(lambda report, i=index: self._sample_share(weights, logits[i], state.rows(i), steps, temperature,
                                                            [streams[k] for k in i], report))
                for index in shares]
        tokens = np.concatenate(run_forked(jobs, progress), axis=1)
        if progress is not None:
            progress(steps)
        return torch.from_numpy(np.ascontiguousarray(tokens.T).astype(np.int64))

    def _sample_share(self, w: "FastWeights", logits: np.ndarray, state: FrameState, steps: int,
                      temperature: float, streams: list, progress=None) -> np.ndarray:
        """The sampling loop for some takes: their tokens, (steps, takes), as small integers."""
        Fr, K = self.frame, self.history_len
        B, V = state.history.shape[0], self.config.vocab_size
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
        (table, back), *more = [(w.lag_tables[k], K + 1 - lag) for k, lag in enumerate(self.lags)]
        position_gates = w.position_gates if w.pos_gates is not None else None
        gru, head = w.token, w.head
        scores, t = logits * w.scale - w.b2, state.position  # the noise carries the head's last bias
        bits = [np.random.PCG64(stream) for stream in streams]

        def draw_noise() -> np.ndarray:  # one frame's noise, (F, B, V), plus the head's last bias
            if temperature <= 0:  # greedy: no noise
                return np.broadcast_to(w.b2, (Fr, B, V))
            noise = gumbel(bits, Fr, V)
            noise += w.b2
            return noise

        with one_torch_thread():  # the products are small: more threads spin more than they help
            for i in range(steps):
                j = i % Fr
                if j == 0:
                    noise = draw_noise()  # a frame's noise at once
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
                if position_gates is not None:
                    gi += position_gates(t)
                h = gru.step(gi, np.matmul(h, gru.w_hh), h)
                scores = head(h)
                t += 1
        return tokens[K:].astype(np.uint16 if V <= 1 << 16 else np.int64)  # small through a pipe


CPU_MAX = "/sys/fs/cgroup/cpu.max"  # "QUOTA PERIOD" in microseconds, or "max PERIOD"


def available_cpus() -> int:
    """The CPU cores this process may run on: its affinity, capped by a container's CPU quota
    (cgroup v2 ``cpu.max``), so that a 2-CPU container on a 64-core host runs 2 workers."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    try:
        with open(CPU_MAX) as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def run_forked(jobs: list, progress=None) -> list:
    """Each job's result, ``job(report)``: the first in this process (reporting to ``progress``),
    the others at the same time in forked children, one thread each. Runs them one after another
    where fork is not safe (off Linux)."""
    if len(jobs) == 1 or not sys.platform.startswith("linux"):
        return [job(progress if k == 0 else None) for k, job in enumerate(jobs)]
    context = multiprocessing.get_context("fork")
    children = []
    for job in jobs[1:]:
        reader, writer = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(job, writer), daemon=True)
        child.start()
        writer.close()
        children.append((child, reader))
    try:
        results = [jobs[0](progress)]
        for child, reader in children:
            ok, value = reader.recv()
            if not ok:
                raise RuntimeError(f"a sampling worker failed: {value}")
            results.append(value)
    finally:
        for child, reader in children:
            reader.close()
            child.join(timeout=1)
            if child.is_alive():
                child.terminate()
    return results


def _child(job, writer) -> None:
    try:
        torch.set_num_threads(1)
        writer.send((True, job(None)))
    except BaseException as error:  # noqa: BLE001 - reported to the parent, which raises it
        writer.send((False, f"{type(error).__name__}: {error}"))
    finally:
        writer.close()


def gumbel(bits: list, frames: int, V: int) -> np.ndarray:
    """Standard Gumbel noise -log(-log u), float32, (frames, len(bits), V): take b's from bit
    generator b, frame after frame. Each draw takes 23 random bits, which fill the mantissa of a
    float in [1, 2); less (1 - 2^-24) it is u, strictly inside (0, 1), so the noise is finite.
    This costs about a third of NumPy's float32 exponential draws, which matters at 2,048 draws
    per step for 8 audio takes."""
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
    """x @ w (w may carry a leading gate axis) through torch: at frame-tier sizes its small-batch
    products beat NumPy's BLAS by up to three times."""
    return torch.matmul(torch.from_numpy(x), w).numpy()


def _gate_major(w: np.ndarray) -> np.ndarray:
    """(..., 3S) -> (3, ..., S): each gate's block contiguous, so the step slices nothing."""
    *lead, width = w.shape
    return np.ascontiguousarray(np.moveaxis(w.reshape(*lead, 3, width // 3), -2, 0))


@contextmanager
def one_torch_thread():
    """Torch on one thread inside the block. Frame-tier products are too small to split: on an
    idle 2-core machine a second thread gains 8%, on a busy one its spinning costs 2.8x."""
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
        self.b_ih = _gate_major(b_in)[:, None]  # (3, 1, S)
        self.w_hh = _gate_major(_np(w_hh).T * 0.5)  # (3, S, S): np.matmul(h, w_hh) is (3, B, S)
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
    """A FrameLM's weights folded for :meth:`FrameLM.sample_fast`, as float32 arrays: lag and
    position embeddings pushed through the token GRU's input weights into gate tables, the
    temperature folded into the head's last layer. The frame tier's matrices are torch tensors
    (over the same memory): at these sizes torch's small-batch products beat NumPy's BLAS."""

    def __init__(self, model: FrameLM, temperature: float = 1.0):
        c, rnn = model.config, model.token_rnn
        self.S, self.frame = c.token_hidden, c.frame
        self.token = FoldedGRU(rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.weight_hh_l0, rnn.bias_hh_l0)
        w_ih = self.token.w_ih
        lag_gates = _gate_major(_np(model.lag_embed.weight) @ w_ih)  # (3, lags x (V + 1), S)
        tables = np.split(lag_gates, len(model.lags), axis=1)
        tables[0] = tables[0] + self.token.b_ih  # every step adds the first table: the gate biases ride in it
        # each (3 x (V + 1), S): gate g of id v is row g (V + 1) + v
        self.lag_tables = [t.reshape(-1, self.S) for t in tables]
        self.gate_offsets = np.arange(3)[:, None] * (c.vocab_size + 1)  # (3, 1)
        self.pos_gates = None  # images: row and column features, folded like the lags
        if c.rows:
            grid = c.rows * c.frame  # row features stop changing at the last row
            positions = _np(model._positions(torch.arange(grid, device=model.embed.weight.device)))
            self.pos_gates = _gate_major(positions @ w_ih)[:, :, None]  # (3, grid, 1, S)
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
        self.frame_torch = [(torch.from_numpy(_gate_major(g.w_ih)), torch.from_numpy(g.w_hh)) for g in self.frame_layers]
        self.frame_out = torch.from_numpy(_np(model.frame_out.weight).T.copy())
        self.frame_out_b = _np(model.frame_out.bias)
        self.context_w = torch.from_numpy(w_ih)

    def position_gates(self, t: int) -> np.ndarray:
        return self.pos_gates[:, min(t, self.last_row + t % self.frame)]

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
            gi = _mm(x, w_ih)
            gi += gru.b_ih
            frame_h[k] = x = gru.step(gi, _mm(frame_h[k], w_hh), frame_h[k])
        out = _mm(x, self.frame_out)
        out += self.frame_out_b
        return out.reshape(B, self.frame, self.S)
