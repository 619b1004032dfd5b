"""A two-tier autoregressive RNN over frames of tokens (after SampleRNN, Mehri et al. 2017).

An upper **frame tier** (a GRU) reads the sequence F tokens at a time and hands each of the F
positions of the next frame its own context vector. A small **token tier** (a GRU of a few dozen
units, as in WaveRNN, Kalchbrenner et al. 2018) runs once per token on that context, the last few
tokens (``lags``) and, for images, the row and column of the pixel, and a two-layer head gives the
logits. F = 16 samples serves audio; F = one image row serves sprites, where lag F is the pixel
above and the frame tier has seen every row above.

The heavy frame tier runs once per F tokens, so per-token work is the small tier's: generation
runs it in a lean NumPy loop (:mod:`genseq.sampler`) with exact Gumbel-max sampling, faster
than real time for 16 kHz audio on one CPU thread (``bench/audio_speed.py``).

Contract, as for :class:`genseq.models.rnn.RNNLM`: ``forward(tokens)`` gives the logits for the
token after each position and the state after the last one; ``step(token, state)`` advances one
token. The token predicted at position t has index t in the frame grid: frame t // F, column t % F.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genseq import kernels
from genseq.models.rnn import next_token_loss
from genseq.sampler import FoldedGRU, gate_major, one_torch_thread, sample_frames


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

    def detach(self) -> "FrameState":
        """The same state cut from the graph that made it (what a training lane carries on)."""
        return FrameState(self.frame_h.detach(), self.token_h.detach(), self.context.detach(),
                          self.history, self.position)

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

        With ``state`` the tokens continue a sequence whose state it is, which must end where a
        frame starts its second position (``state.position % frame == 1``, as after a first call
        of 1 + k frames' tokens and further calls of whole frames): :meth:`prime` goes through a
        long prime that way, a chunk at a time, with the same result as one call.
        """
        if state is not None:
            return self._continue(tokens, state, last_only)
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

    def _continue(self, tokens: torch.Tensor, state: FrameState, last_only: bool):
        """:meth:`forward` from ``state`` at position P = 1 + mF: the chunk's first F - 1 positions
        take the state's contexts (frame m), and each whole frame of the chunk, once read, gives
        the next frame's."""
        B, T = tokens.shape
        K, Fr, P = self.history_len, self.frame, state.position
        if Fr > 1 and P % Fr != 1:
            raise ValueError(f"a FrameLM continues at a frame's second position, not at {P}")
        padded = torch.cat([state.history, tokens], 1)
        lagged = torch.stack([padded[:, K + 1 - j:K + 1 - j + T] for j in self.lags], -1)
        x = self.lag_embed(self._lag_ids(lagged)).sum(-2)
        n = T // Fr  # the chunk's whole frames, from its first token on
        frame_h, contexts = state.frame_h, state.context[:, None]
        if n:
            read, frame_h = self._frames(tokens[:, :n * Fr].reshape(B, n, Fr), frame_h)
            contexts = torch.cat([contexts, self._contexts(read)], 1)
        offset = P % Fr  # the state's frame m starts at mF, the chunk at mF + 1
        x = x + contexts.flatten(1, 2)[:, offset:offset + T]
        x = x + self._positions(torch.arange(P, P + T, device=tokens.device))
        hidden, token_h = self._token_tier(self.drop(x), state.token_h)
        logits = self.head(self.drop(hidden[:, -1:] if last_only else hidden))
        return logits, FrameState(frame_h, token_h, contexts[:, -1], padded[:, -K:], P + T)

    prime_once = True

    def repeat_state(self, state: FrameState, batch: int) -> FrameState:
        return state.repeat(batch)

    def select_state(self, state: FrameState, index: torch.Tensor) -> FrameState:
        return state.rows(index)

    prime_chunk = 16384  # tokens a prime is read in at a time: memory stays flat in its length

    def prime(self, tokens: torch.Tensor, progress=None):
        """What generation needs of a prime: the next-token logits (B, 1, V) and the state, without
        the head's work at every earlier position. A long prime goes through in chunks of about
        :attr:`prime_chunk` tokens that carry the state (the same result as one call, in memory
        that does not grow with the prime); ``progress`` is told the tokens read after each."""
        T, Fr = tokens.shape[1], self.frame
        first = min(T, 1 + Fr * max(1, self.prime_chunk // Fr))  # then P % F == 1 for the rest
        logits, state = self(tokens[:, :first], last_only=True)
        chunk = Fr * max(1, self.prime_chunk // Fr)
        for start in range(first, T, chunk):
            if progress is not None:
                progress(start)
            logits, state = self(tokens[:, start:start + chunk], state, last_only=True)
        if progress is not None:
            progress(T)
        return logits, state

    def _token_tier(self, x: torch.Tensor, h0: torch.Tensor):
        """The token GRU over inputs x (B, T, S) from h0 (1, B, S). Without gradients on the CPU it
        steps in NumPy (:class:`~genseq.sampler.FoldedGRU`), faster than torch's loop, or compiled
        (:func:`genseq.kernels.gru_scan`) when Numba is installed: priming one second of audio
        is 16,000 steps (``prime_s`` in ``bench/audio_speed.py``)."""
        if torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
            return self.token_rnn(x, h0)
        rnn, (B, T, S) = self.token_rnn, x.shape
        gru = FoldedGRU(rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.weight_hh_l0, rnn.bias_hh_l0)
        gates = gate_major(x.numpy().reshape(B * T, S) @ gru.w_ih).reshape(3, B, T, S)
        gates = np.ascontiguousarray(gates.transpose(2, 0, 1, 3))  # (T, 3, B, S): one block per step
        gates += gru.b_ih
        out = np.empty((T, B, S), np.float32)
        h = h0[0].numpy().copy()
        if kernels.KERNELS:
            kernels.gru_scan(gates, h, gru.w_hh, gru.b_hn, out)
        else:
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

    def loss(self, batch: torch.Tensor, step: int = 0, carry: bool = False,
             state: FrameState | None = None) -> dict:
        """The mean next-token NLL of a batch of windows. With ``carry`` (``--carry``'s lanes) the
        windows continue ``state`` (None: they start the lanes, one id longer), and the result
        holds the state after them, detached, under ``"state"``."""
        return next_token_loss(self, batch, carry, state)

    @staticmethod
    def carried_fields(state: FrameState) -> dict:
        """A carried state as a checkpoint keeps it."""
        return vars(state)

    @staticmethod
    def carried_state(fields: dict, device) -> FrameState:
        """A :class:`FrameState` from its fields as a checkpoint keeps them."""
        return FrameState(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in fields.items()})

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

    def sample_fast(self, logits: torch.Tensor, state: FrameState, steps: int, temperature: float,
                    seed: int | None, progress=None, workers: int | None = None, top_k: int = 0) -> torch.Tensor:
        """``steps`` tokens after a primed ``state`` by :func:`genseq.sampler.sample_frames`."""
        return sample_frames(self, logits, state, steps, temperature, seed, progress, workers, top_k)
