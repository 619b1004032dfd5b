"""One ``generate`` for every modality: prime in one parallel call, then one step per token.

Continuing a line of text, an audio clip or the top half of a sprite is the same call with a
different prime. The per-token cost is constant: the recurrent state carries the whole prefix.
"""

from typing import Any, Protocol

import torch


class Autoregressive(Protocol):
    """What :func:`generate` and :func:`beam_search` call; every genseq model that generates meets
    it (:class:`~genseq.models.rnn.RNNLM`, :class:`~genseq.models.frame.FrameLM`, and a VAE's
    :class:`~genseq.models.vae.LatentDecoder`). A state is whatever the model carries (a tensor,
    an LSTM's pair, a dataclass); only the model's own methods look inside it."""

    prime_once: bool  # a prime shared by the batch may run once for all, its state then copied
    sample_fast: Any  # None, or a method that draws temperature and top-k samples faster than step

    def parameters(self): ...

    def eval(self): ...

    def prime(self, tokens: torch.Tensor, progress=None) -> tuple[torch.Tensor, Any]:
        """tokens (B, T) -> logits (B, T' <= T, V) whose last row predicts the next token, and the
        state; ``progress``, if given, is told how many tokens have been read."""

    def step(self, token: torch.Tensor, state) -> tuple[torch.Tensor, Any]:
        """token (B,) -> logits (B, V) for the token after it, and the new state."""

    def repeat_state(self, state, batch: int):
        """A batch-of-one state copied ``batch`` times."""

    def select_state(self, state, index: torch.Tensor):
        """The state of rows ``index`` (B',) alone."""


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the ``top_k`` most likely tokens and/or the smallest set whose probability reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2020); the rest get ``-inf``.

    logits: (B, V). The most likely token always survives.
    """
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= top_p  # mass before this token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """logits: (B, V) -> ids (B,). ``temperature == 0`` means greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.inference_mode()
def generate(model: Autoregressive, prime, steps: int, *, batch: int = 1, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int | None = None, stop_id: int | None = None,
             progress=None, workers: int | None = None, prime_progress=None) -> torch.Tensor:
    """Sample ``steps`` tokens after ``prime`` for ``batch`` sequences at once.

    prime: ids (P,) shared by the batch, or (B, P); at least one token.
    stop_id: a sequence that emits it is finished (later positions repeat ``stop_id``); generation
        ends early once every sequence is finished.
    progress: optional callable given the number of tokens done after each step (progress bars).
    prime_progress: optional callable given the number of prime tokens read (a long audio prime).
    Returns the generated ids, (B, steps), without the prime. Same seed, same device: same output.
    A model with a ``sample_fast`` method (the frame model) samples temperature and top-k draws
    through it, sharing the takes out among ``workers`` processes (default: one per CPU core);
    top-p takes the general step-by-step path. ``model`` meets :class:`Autoregressive`.
    """
    model.eval()
    device = next(model.parameters()).device
    prime = torch.as_tensor(prime, dtype=torch.long, device=device)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    if prime.dim() == 1 and model.prime_once:  # run a shared prime once, copy the state
        logits, state = model.prime(prime.unsqueeze(0), progress=prime_progress)
        logits, state = logits[:, -1].expand(batch, -1), model.repeat_state(state, batch)
    else:
        if prime.dim() == 1:
            prime = prime.unsqueeze(0).expand(batch, -1)
        logits, state = model.prime(prime, progress=prime_progress)
        logits = logits[:, -1]
    if model.sample_fast is not None and top_p == 1.0 and stop_id is None:
        return model.sample_fast(logits, state, steps, temperature, seed, progress, workers, top_k).to(device)
    out = torch.empty(logits.size(0), steps, dtype=torch.long, device=device)
    finished = torch.zeros(logits.size(0), dtype=torch.bool, device=device)
    for t in range(steps):
        token = sample_next(logits, temperature, top_k, top_p, generator)
        if stop_id is not None:
            token = token.masked_fill(finished, stop_id)
            finished |= token == stop_id
        out[:, t] = token
        if progress is not None:
            progress(t + 1)
        if stop_id is not None and bool(finished.all()):
            return out[:, :t + 1]
        if t + 1 < steps:
            logits, state = model.step(token, state)
    return out


def repeat_state(state, batch: int):
    """A batch-of-one recurrent state, a (L, 1, H) tensor or an LSTM's pair of them, copied
    ``batch`` times."""
    if isinstance(state, tuple):
        return tuple(s.expand(-1, batch, -1).contiguous() for s in state)
    return state.expand(-1, batch, -1).contiguous()


def select_state(state, index: torch.Tensor):
    """Rows ``index`` of a recurrent state (a (L, B, H) tensor or an LSTM's pair of them)."""
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)


@torch.inference_mode()
def beam_search(model: Autoregressive, prime, steps: int, *, batch: int = 1, beam: int = 5,
                stop_id: int | None = None) -> torch.Tensor:
    """The most likely continuation of ``prime`` by beam search, (batch, steps).

    Every sequence keeps its ``beam`` best partial continuations by total log-probability; a beam
    that has emitted ``stop_id`` is finished and only repeats it at no cost.
    """
    model.eval()
    device = next(model.parameters()).device
    prime = torch.as_tensor(prime, dtype=torch.long, device=device)
    if prime.dim() == 1:
        prime = prime.unsqueeze(0).expand(batch, -1)
    B = prime.size(0)
    logits, state = model.prime(prime.repeat_interleave(beam, 0))
    logits = logits[:, -1]
    scores = torch.full((B, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: let only the first one expand at first
    tokens = torch.empty(B, beam, 0, dtype=torch.long, device=device)
    finished = torch.zeros(B, beam, dtype=torch.bool, device=device)
    V = logits.size(-1)
    for t in range(steps):
        logp = logits.float().log_softmax(-1).view(B, beam, V)
        if stop_id is not None:  # a finished beam continues only with stop_id, at no cost
            logp = torch.where(finished.unsqueeze(-1), torch.full_like(logp, float("-inf")), logp)
            logp[..., stop_id] = torch.where(finished, 0.0, logp[..., stop_id])
        total = (scores.unsqueeze(-1) + logp).view(B, beam * V)
        scores, flat = total.topk(beam, -1)
        origin, token = flat // V, flat % V
        tokens = torch.cat([tokens.gather(1, origin.unsqueeze(-1).expand(-1, -1, t)), token.unsqueeze(-1)], -1)
        if stop_id is not None:
            finished = finished.gather(1, origin) | (token == stop_id)
            if bool(finished.all()):
                break
        rows = (origin + torch.arange(B, device=device).unsqueeze(1) * beam).flatten()
        logits, state = model.step(token.flatten(), model.select_state(state, rows))
    return tokens[:, 0]
