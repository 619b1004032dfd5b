"""Autoregressive RNN language model over token ids (char-rnn, Karpathy 2015; Graves 2013).

Two paths, as every model here has: a teacher-forced :meth:`RNNLM.forward` over whole sequences
(training, priming, evaluation) and :meth:`RNNLM.step`, one token with a carried state, so that
generation does O(1) work per token and never re-runs the prefix.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genseq.generate import repeat_state, select_state

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


@dataclass
class RNNConfig:
    vocab_size: int
    cell: str = "gru"
    embed_dim: int = 256
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.1
    tie_embeddings: bool = False  # share the input embedding with the output layer (Press & Wolf 2017)


class RNNLM(nn.Module):
    """Embedding -> GRU/LSTM stack -> logits over the vocabulary. Meets
    :class:`genseq.generate.Autoregressive`."""

    family = "rnn"
    prime_once = True
    sample_fast = None  # generation steps through :meth:`step`

    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.rnn = CELLS[config.cell](
            config.embed_dim, config.hidden_size, config.num_layers, batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        if config.tie_embeddings:
            self.proj = (nn.Identity() if config.hidden_size == config.embed_dim
                         else nn.Linear(config.hidden_size, config.embed_dim))
            self.head = nn.Linear(config.embed_dim, config.vocab_size)
            self.head.weight = self.embed.weight
        else:
            self.proj = nn.Identity()
            self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, tokens: torch.Tensor, state=None):
        """tokens: (B, T) ids -> logits (B, T, V) for the token after each position, and the
        final state (a tensor (L, B, H) for GRU, a pair of them for LSTM)."""
        hidden, state = self.rnn(self.drop(self.embed(tokens)), state)
        return self.head(self.proj(self.drop(hidden))), state

    def prime(self, tokens: torch.Tensor, progress=None):
        return self(tokens)

    def step(self, token: torch.Tensor, state):
        """token: (B,) ids -> logits (B, V) for the next token, and the new state."""
        logits, state = self(token.unsqueeze(1), state)
        return logits.squeeze(1), state

    repeat_state = staticmethod(repeat_state)
    select_state = staticmethod(select_state)

    def loss(self, batch: torch.Tensor, step: int = 0, carry: bool = False, state=None) -> dict:
        """The mean next-token NLL of a batch of windows; with ``carry`` (``--carry``'s lanes) they
        continue ``state`` (None: they start the lanes) and the result holds the state after them,
        detached, under ``"state"``."""
        return next_token_loss(self, batch, carry, state)

    @staticmethod
    def carried_fields(state) -> dict:
        """A carried state as a checkpoint keeps it."""
        return {"state": state}

    @staticmethod
    def carried_state(fields: dict, device):
        """The carried state from :meth:`carried_fields`, on ``device``."""
        state = fields["state"]
        return tuple(t.to(device) for t in state) if isinstance(state, (tuple, list)) else state.to(device)

    def stream_nll(self, stream: torch.Tensor) -> tuple[float, int]:
        """Total NLL (nats) of ``stream`` and the tokens scored (:func:`stream_nll`)."""
        return stream_nll(self, stream)


def next_token_loss(model, batch: torch.Tensor, carry: bool = False, state=None) -> dict:
    """batch: (B, T + 1) ids -> ``{"loss": mean NLL in nats per predicted token, "bits_per_token"}``
    of any model whose forward takes ``(tokens, state)`` and gives the logits of the token after
    each position and its last state. With ``carry`` the windows continue ``state`` and the result
    adds the state after them, cut from the graph, under ``"state"``."""
    logits, after = model(batch[:, :-1], state)
    loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
    result = {"loss": loss, "bits_per_token": loss.detach() / math.log(2)}
    if carry:
        result["state"] = tuple(t.detach() for t in after) if isinstance(after, tuple) else after.detach()
    return result


@torch.inference_mode()
def stream_nll(model: RNNLM, stream: torch.Tensor, lanes: int = 16, chunk: int = 512) -> tuple[float, int]:
    """Total NLL (nats) of every token of ``stream`` after the first, and how many there were.

    The stream is cut into ``lanes`` contiguous pieces run side by side, each carrying its state
    from chunk to chunk, so every token is scored with all the context of its piece.
    """
    device = next(model.parameters()).device
    inputs, targets = stream[:-1].long(), stream[1:].long()
    n = len(targets)
    lanes = max(1, min(lanes, n))
    length = -(-n // lanes)
    pad = lanes * length - n
    inputs = F.pad(inputs, (0, pad)).view(lanes, length)
    targets = F.pad(targets, (0, pad), value=-100).view(lanes, length)
    total, state = 0.0, None
    for start in range(0, length, chunk):
        x = inputs[:, start:start + chunk].to(device)
        y = targets[:, start:start + chunk].to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100,
                                 reduction="sum").item()
    return total, n
