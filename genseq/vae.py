"""The sentence-VAE task: encode lines, decode latent codes, interpolate, and measure the model.

Metrics follow He et al. 2019 ("Lagging inference networks and posterior collapse"): importance
weighted NLL, KL, mutual information between x and z, active units; plus how much of a line
greedy decoding of its posterior mean gives back.
"""

import math

import numpy as np
import torch
from tqdm import tqdm

from genseq.codecs.base import BOS, EOS
from genseq.codecs.text import TextCodec
from genseq.data import pad_sequences
from genseq.errors import GenseqError
from genseq.generate import beam_search, generate, sample_next
from genseq.models.vae import (LatentDecoder, SequenceVAE, gaussian_kl, gaussian_log_density, log_mixture_density,
                               reparameterize)
from genseq.store import Loaded
from genseq.train import trained_parameters

DECODERS = ("greedy", "sample", "beam")


def batches(codec: TextCodec, lines: list[str], size: int):
    """Padded ids (B, T) of ``lines``, ``size`` lines at a time."""
    for start in range(0, len(lines), size):
        yield pad_sequences([codec.encode(line) for line in lines[start:start + size]], BOS, EOS)


@torch.inference_mode()
def encode_lines(model: SequenceVAE, codec: TextCodec, lines: list[str],
                 proposal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances, (N, Z) each: the encoder's, or with ``proposal`` the
    proposal's (:meth:`~genseq.models.vae.SequenceVAE.encoding`)."""
    device = next(model.parameters()).device
    parts = [model.encode(ids.to(device), proposal) for ids in batches(codec, lines, 512)]
    return torch.cat([m for m, _ in parts]), torch.cat([v for _, v in parts])


def no_cudnn_rnn():
    """cuDNN runs an RNN's backward pass only in training mode; gradients through a model in eval
    mode (no dropout, no word dropout), as refinement and the refit need, take PyTorch's own
    kernels instead. A no-op on the CPU."""
    return torch.backends.cudnn.flags(enabled=False)


REFINE_STEPS = 10  # the default for interpolate, reconstruct and eval's refined metric


def line_codes(model: SequenceVAE, codec: TextCodec, lines: list[str], refine: int = 0) -> torch.Tensor:
    """Each line's code (N, Z): the encoder's posterior mean, refined for ``refine`` steps."""
    model.eval()
    mean, _ = encode_lines(model, codec, lines)
    return refine_codes(model, codec, lines, mean, refine) if refine > 0 else mean


def refine_codes(model: SequenceVAE, codec: TextCodec, lines: list[str], mean: torch.Tensor, steps: int,
                 lr: float = 0.05) -> torch.Tensor:
    """``steps`` Adam steps from the posterior means (N, Z) towards the code that decodes each
    line best, maximising log p(x | z) for each line on its own (semi-amortized inference, Kim
    et al. 2018). The encoder guesses in one shot and guesses worse on lines it never saw (the
    amortization gap); ten steps close much of it (``bench/vae_paths.py`` measures how much).
    The prior's pull, log p(z), is left out: a decoder trained with free bits reads codes that
    N(0, I) does not describe, and on every model measured (docs/sizing.md) the pull gave back
    less of the line, most where the codes hold most. A few small steps from the mean keep the
    code near where the encoder put it. The model must be in eval mode (no dropout).

    Args:
        mean: (N, Z) posterior means of ``lines``, the starting codes.

    Returns:
        (N, Z) refined codes.
    """
    codes = []
    with torch.inference_mode(False), torch.enable_grad(), no_cudnn_rnn():
        for start, ids in zip(range(0, len(lines), 512), batches(codec, lines, 512)):
            ids = ids.to(mean.device)
            z = mean[start:start + len(ids)].clone().requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=lr)
            for _ in range(steps):
                loss = model.reconstruction_nll(ids, z).sum()
                z.grad, = torch.autograd.grad(loss, z)  # the weights' gradients are not needed
                optimizer.step()
            codes.append(z.detach())
    return torch.cat(codes)


REFIT_LR = 1e-3


def fit_proposal(model: SequenceVAE, data, steps: int, lr: float = REFIT_LR, start: int = 0,
                 fresh: bool = True, progress: bool = True) -> dict:
    """Fit a trained VAE's proposal, the q(z|x) its likelihood is measured with, to its decoder:
    ``steps`` Adam steps on the plain negative ELBO (KL weight 1, no free bits) with everything
    else frozen and no dropout, on batches ``data.batch(start + i)``. The proposal starts as a
    copy of the encoder (always with ``fresh``, else where the model has none). Free bits and
    annealing are there to shape the decoder; they leave an encoder that holds more than the ELBO
    wants (a floor of KL per dimension), which makes a poor proposal for importance sampling.
    The encoder itself is left as trained, since its codes are what the decoder learnt to read
    (:mod:`genseq.models.vae`). Returns the last step's ``rec`` and ``kl`` (nats per line)."""
    if fresh or model.proposal is None:
        model.add_proposal()
    trained = list(model.proposal.parameters())
    frozen = {p: p.requires_grad for p in trained_parameters(model).values()}  # all but the proposal
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(trained, lr=lr)
    model.eval()  # the decoder as it decodes: no dropout, no word dropout
    stats = {}
    try:
        for p in frozen:
            p.requires_grad_(False)
        with torch.inference_mode(False), torch.enable_grad(), no_cudnn_rnn():
            for step in tqdm(range(steps), desc="fit proposal", unit="step", disable=not progress,
                             dynamic_ncols=True):
                rec, kl_dims = model.elbo_terms(data.batch(start + step).to(device), proposal=True)
                kl = kl_dims.sum()
                optimizer.zero_grad(set_to_none=True)
                (rec + kl).backward()
                optimizer.step()
                stats = {"rec": rec.item(), "kl": kl.item()}
    finally:
        for p, flag in frozen.items():
            p.requires_grad_(flag)
    return {"steps": steps, "lr": lr, **stats}


def decode_latents(model: SequenceVAE, codec: TextCodec, z: torch.Tensor, decode: str = "greedy",
                   max_tokens: int = 64, beam: int = 5, **sampling) -> list[str]:
    """Lines decoded from latent codes z (N, Z): ``greedy``, ``sample`` (``sampling`` takes
    temperature, top_k, top_p, seed) or ``beam`` search."""
    if decode not in DECODERS:
        raise GenseqError(f"unknown decoding {decode!r}; choose one of {', '.join(DECODERS)}")
    if hasattr(model, "render"):  # the image VAE draws every pixel at once
        return [codec.decode(row) for row in draw_pixels(model, codec, z, decode, **sampling).tolist()]
    decoder = LatentDecoder(model, z, codec.greedy_logits if decode == "greedy" else None)
    if decode == "beam":
        ids = beam_search(decoder, [BOS], max_tokens, batch=len(z), beam=beam, stop_id=EOS)
    else:
        if decode == "greedy":
            sampling = {**sampling, "temperature": 0}
        ids = generate(decoder, [BOS], max_tokens, batch=len(z), stop_id=EOS, **sampling)
    return [codec.decode(row) for row in ids.tolist()]


@torch.inference_mode()
def draw_pixels(model, codec, z: torch.Tensor, decode: str = "greedy", temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0, seed: int | None = None) -> torch.Tensor:
    """Pixel ids (N, H*W) of the images an image VAE draws from codes z (N, Z): each pixel's most
    likely class (``greedy``, opacity first: :meth:`~genseq.codecs.Codec.greedy_logits`) or a
    draw from its distribution (``sample``, at ``temperature`` with top-k / top-p)."""
    if decode == "beam":
        raise GenseqError("an image VAE draws every pixel at once, so there is no sequence to search; "
                          "give --decode greedy or sample")
    logits = model.render(z)
    if decode == "greedy" or temperature == 0:
        return codec.greedy_logits(logits).argmax(-1)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return sample_next(logits.flatten(0, 1).cpu(), temperature, top_k, top_p, generator).view(logits.shape[:2])


def max_tokens(loaded: Loaded) -> int:
    """Decoding length limit: a little past the longest training line."""
    return loaded.record["corpus"].get("longest_tokens", 60) + 8


def check_line(codec: TextCodec, line: str, warn) -> None:
    if not line.strip():
        raise GenseqError("an empty line cannot be encoded; give a line with some text")
    unknown = codec.unknown_characters(line)
    if unknown:
        warn(f"note: the model never saw {' '.join(unknown)} in {line!r}; they are read as unknown")


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for latent spaces); lerp when a, b align."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-8)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-4:
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def interpolate(loaded: Loaded, a, b, steps: int = 8, spherical: bool = False,
                warn=print, refine: int = REFINE_STEPS, **decoding) -> list[tuple[float, object]]:
    """(t, decoded item) at ``steps`` evenly spaced points from a's code (t=0) to b's: posterior
    means, refined for ``refine`` steps (see :func:`line_codes`). Items are lines of text, or
    RGBA arrays for an image VAE."""
    model, codec = loaded.model, loaded.codec
    if codec.kind == "text":
        for line in (a, b):
            check_line(codec, line, warn)
    mean = line_codes(model, codec, [a, b], refine)
    ts = [i / (steps - 1) for i in range(steps)] if steps > 1 else [0.0]
    path = torch.stack([(slerp if spherical else lerp)(mean[0], mean[1], t) for t in ts])
    lines = decode_latents(model, codec, path, max_tokens=max_tokens(loaded), **decoding)
    return list(zip(ts, lines))


def reconstruct(loaded: Loaded, lines: list[str], warn=print, refine: int = REFINE_STEPS,
                **decoding) -> list[str]:
    """Each line encoded to its code (the posterior mean, refined for ``refine`` steps) and decoded back."""
    for line in lines:
        check_line(loaded.codec, line, warn)
    mean = line_codes(loaded.model, loaded.codec, lines, refine)
    return decode_latents(loaded.model, loaded.codec, mean, max_tokens=max_tokens(loaded), **decoding)


def sample_prior(loaded: Loaded, n: int, seed: int | None = None, **decoding) -> list[str]:
    """Lines decoded from z ~ N(0, I)."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    z = torch.randn(n, loaded.model.config.latent_dim, generator=generator)
    z = z.to(next(loaded.model.parameters()).device)
    return decode_latents(loaded.model, loaded.codec, z, max_tokens=max_tokens(loaded), seed=seed,
                          **decoding)


def mutual_info(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator) -> float:
    """I(x; z) under q, estimated as in He et al. 2019: E[log q(z|x)] - E[log q(z)], with the
    aggregate posterior q(z) the mixture of every line's posterior."""
    d = mean.size(1)
    z = reparameterize(mean, logvar, torch.randn(mean.shape, generator=generator).to(mean.device))
    neg_entropy = (-0.5 * d * math.log(2 * math.pi) - 0.5 * (1 + logvar).sum(-1)).mean()
    log_qz = log_mixture_density(z, mean, logvar)
    return (neg_entropy - log_qz.mean()).item()


IW_FIT_STEPS = 30  # eval's default: each held-out line's own q(z|x) before importance sampling
IW_ROWS = 2048  # sequences decoded at once for the IW-NLL


def fit_posteriors(model: SequenceVAE, ids: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                   steps: int, generator: torch.Generator, samples: int = 8, lr: float = 0.05):
    """Each line's own Gaussian q(z|x), fitted for ``steps`` Adam steps from ``mean`` and
    ``logvar`` (B, Z) on that line's negative ELBO (``samples`` draws of z, the KL exact), the
    rate falling to zero on a cosine. An amortised proposal guesses each line's posterior in one
    shot and guesses worse on lines it never saw (the amortization gap, Cremer et al. 2018);
    importance sampling from a q fitted to the line itself bounds -log p(x) more tightly, and any
    q gives a true bound. The model must be in eval mode. Returns the fitted (mean, logvar)."""
    with torch.inference_mode(False), torch.enable_grad(), no_cudnn_rnn():
        ids = ids.clone()  # tensors made in inference mode cannot be saved for backward
        mean, logvar = (x.detach().clone().requires_grad_(True) for x in (mean, logvar))
        optimizer = torch.optim.Adam([mean, logvar], lr=lr)
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            eps = torch.randn((samples, *mean.shape), generator=generator).to(mean.device)
            z = reparameterize(mean, logvar, eps).flatten(0, 1)
            rec = model.reconstruction_nll(ids.repeat(samples, 1), z).sum() / samples
            loss = rec + gaussian_kl(mean, logvar).sum()
            mean.grad, logvar.grad = torch.autograd.grad(loss, (mean, logvar))  # not the weights'
            optimizer.step()
    return mean.detach(), logvar.detach()


@torch.inference_mode()
def iw_nll(model: SequenceVAE, ids: torch.Tensor, samples: int, generator: torch.Generator,
           chunk: int = 100, fit: int = 0) -> torch.Tensor:
    """Importance-weighted estimate of -log p(x) (Burda et al. 2016) with ``samples`` draws from
    q(z|x) per line, (B,): the proposal's q (the encoder's where the model has none), with
    ``fit`` fitted to each line for that many steps first (:func:`fit_posteriors`)."""
    mean, logvar = model.encode(ids, proposal=True)
    if fit:
        mean, logvar = fit_posteriors(model, ids, mean, logvar, fit, generator)
    log_weights = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        eps = torch.randn((k, *mean.shape), generator=generator).to(mean.device)
        z = reparameterize(mean, logvar, eps)  # (k, B, Z)
        rows, codes = ids.repeat(k, 1), z.flatten(0, 1)  # decoded a few thousand at a time: flat memory
        rec = torch.cat([model.reconstruction_nll(rows[i:i + IW_ROWS], codes[i:i + IW_ROWS])
                         for i in range(0, len(rows), IW_ROWS)]).view(k, -1)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
        log_weights.append(-rec + log_pz - gaussian_log_density(z, mean, logvar))
    return -(torch.logsumexp(torch.cat(log_weights), 0) - math.log(samples))


@torch.inference_mode()
def vae_metrics(model: SequenceVAE, codec: TextCodec, lines: list[str], iw_samples: int = 0,
                seed: int = 0, refine: int = 0, iw_fit: int = 0) -> dict:
    """Held-out metrics in nats per line: ``loss`` (the negative ELBO), ``rec``, ``kl`` and
    ``mutual_info`` under the proposal (the encoder where the model has none); for a model
    trained with free bits and no proposal yet, ``objective``, the training objective at full KL
    weight (per-dimension KL below the floor counts as the floor); ``active_units``
    and ``recon_char_accuracy`` (greedy decoding of the posterior means; ``recon_pixel_accuracy``
    for images) of the encoder's codes, with ``refine`` also the same from codes refined for that
    many steps (``recon_char_accuracy_refined``, see :func:`line_codes`); and with ``iw_samples``
    also ``iw_nll`` and the perplexity per token it implies, from a q fitted to each line for
    ``iw_fit`` steps (:func:`fit_posteriors`; 0: the proposal as it is)."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    rec = iw = 0.0
    kl_dims = torch.zeros(model.config.latent_dim, dtype=torch.float64)
    tokens = 0
    means, proposed = [], []
    for ids in batches(codec, lines, 256):
        ids = ids.to(device)
        q_mean, q_logvar = model.encode(ids, proposal=True)
        means.append(model.encode(ids)[0] if model.proposal is not None else q_mean)  # the codes
        proposed.append((q_mean, q_logvar))
        z = reparameterize(q_mean, q_logvar, torch.randn(q_mean.shape, generator=generator).to(device))
        rec += model.reconstruction_nll(ids, z).sum().item()
        kl_dims += gaussian_kl(q_mean, q_logvar).sum(0).double().cpu()
        tokens += int((ids[:, 1:] != 0).sum())
        if iw_samples:
            iw += iw_nll(model, ids, iw_samples, generator, fit=iw_fit).sum().item()
    n = len(lines)
    kl = kl_dims.sum().item()
    mean = torch.cat(means)
    q_mean, q_logvar = (torch.cat(parts) for parts in zip(*proposed))
    longest = max(len(codec.encode(x)) for x in lines) + 8
    accuracy = recon_accuracy(codec, lines, decode_latents(model, codec, mean, max_tokens=longest))
    if refine:
        codes = refine_codes(model, codec, lines, mean, refine)  # from the means already encoded
        refined = recon_accuracy(codec, lines, decode_latents(model, codec, codes, max_tokens=longest))
        accuracy.update({f"{name}_refined": value for name, value in refined.items()}, refine_steps=refine)
    variances = mean.var(0, correction=1 if n > 1 else 0)
    metrics = {"loss": (rec + kl) / n, "neg_elbo": (rec + kl) / n, "rec": rec / n, "kl": kl / n,
               "mutual_info": mutual_info(q_mean, q_logvar, generator),
               "active_units": int((variances >= 0.01).sum()),
               "latent_dim": model.config.latent_dim,
               "unit_variances": [round(v, 4) for v in variances.tolist()],
               **accuracy, "lines": n, "tokens": tokens}
    if model.config.free_bits > 0 and model.proposal is None:  # the encoder's codes, as training scores them
        metrics["objective"] = rec / n + model.penalised_kl(kl_dims / n).sum().item()
    if iw_samples:
        metrics.update(iw_nll=iw / n, iw_samples=iw_samples, iw_fit_steps=iw_fit, perplexity=math.exp(iw / tokens),
                       **codec.unit_metrics(iw, lines))
    if hasattr(model, "render"):  # the lecture's picture, swept over the two busiest dimensions
        dims = tuple(variances.argsort(descending=True)[:2].tolist()) if len(variances) > 1 else (0, 0)
        if dims[0] != dims[1]:
            grid = sweep_codes(model.config.latent_dim, dims, SWEEP_STEPS, SWEEP_SPAN).to(device)
            metrics.update(sweep_figures(decode_latents(model, codec, grid), SWEEP_STEPS), sweep_dims=list(dims))
    return metrics


SWEEP_STEPS, SWEEP_SPAN = 9, 2.5  # genseq traverse's defaults


def recon_accuracy(codec, items: list, decoded: list) -> dict:
    """The share of the codec's units (characters of text, pixels of images) that decoding gives
    back, position by position: ``recon_char_accuracy`` or ``recon_pixel_accuracy``."""
    pairs = [(codec.recon_units(item), codec.recon_units(out)) for item, out in zip(items, decoded)]
    matches = sum(sum(a == b for a, b in zip(x, y)) for x, y in pairs)
    return {f"recon_{codec.recon_unit}_accuracy": matches / sum(len(x) for x, _ in pairs)}


def traverse(loaded: Loaded, dims: tuple[int, int], steps: int = SWEEP_STEPS, span: float = SWEEP_SPAN,
             start: torch.Tensor | None = None) -> list:
    """The lecture's latent sweep: every code dimension fixed (at ``start``, the prior's mean by
    default) but two, swept over [-span, span] on a steps x steps grid; the decoded items, row by
    row (the first dimension down, the second across)."""
    model = loaded.model
    Z = model.config.latent_dim
    if any(not 0 <= d < Z for d in dims) or dims[0] == dims[1]:
        raise GenseqError(f"--dims takes two different dimensions from 0 to {Z - 1}")
    grid = sweep_codes(Z, dims, steps, span, start).to(next(model.parameters()).device)
    return decode_latents(model, loaded.codec, grid, max_tokens=max_tokens(loaded))


def sweep_codes(latent_dim: int, dims: tuple[int, int], steps: int, span: float,
                start: torch.Tensor | None = None) -> torch.Tensor:
    """The codes of a traverse grid, (steps * steps, latent_dim), row by row."""
    values = torch.linspace(-span, span, steps)
    grid = (torch.zeros(latent_dim) if start is None else start.detach().cpu()).repeat(steps * steps, 1)
    grid[:, dims[0]] = values.repeat_interleave(steps)
    grid[:, dims[1]] = values.repeat(steps)
    return grid


def largest_component(mask: np.ndarray) -> int:
    """Pixels in the largest 4-connected region of a boolean mask (H, W)."""
    seen = np.zeros_like(mask)
    best = 0
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        seen[y, x], stack, size = True, [(y, x)], 0
        while stack:
            cy, cx = stack.pop()
            size += 1
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        best = max(best, size)
    return best


def body_mask(image: np.ndarray) -> np.ndarray:
    """The pixels of an RGBA image that are not background: the opaque ones, or, in an image with
    no transparency (the lecture's sprites), those unlike the commonest colour of its border."""
    opaque = image[..., 3] >= 128
    if not opaque.all():
        return opaque
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])[:, :3]
    colours, counts = np.unique(border, axis=0, return_counts=True)
    return (image[..., :3] != colours[counts.argmax()]).any(-1)


def is_sprite(image: np.ndarray) -> bool:
    """Whether an RGBA image reads as a sprite rather than a block or noise: 10-85% of its pixels
    body (not background, :func:`body_mask`), at least 4 colours, and one main body (the largest
    4-connected region holds at least 80% of the body's pixels)."""
    opaque = body_mask(image)
    share = opaque.mean()
    if not 0.10 <= share <= 0.85:
        return False
    colours = len(np.unique(image[opaque][:, :3], axis=0))
    return colours >= 4 and largest_component(opaque) >= 0.8 * opaque.sum()


def sweep_figures(images: list[np.ndarray], steps: int) -> dict:
    """How a steps x steps traverse grid of RGBA images reads: ``sweep_sprite_cells`` (the share
    of cells that are sprites, :func:`is_sprite`), ``sweep_neighbour_change`` (the share of pixels
    that change between neighbouring cells, on average: how gradual the sweep is) and
    ``sweep_corner_change`` (between opposite corners, the smaller of the two diagonals: how far
    it moves)."""
    cells = np.stack([image.reshape(-1, 4) for image in images]).reshape(steps, steps, -1, 4)

    def change(a, b):
        return float((a != b).any(-1).mean())
    pairs = [change(cells[r, c], cells[r, c + 1]) for r in range(steps) for c in range(steps - 1)] + \
            [change(cells[r, c], cells[r + 1, c]) for r in range(steps - 1) for c in range(steps)]
    corners = min(change(cells[0, 0], cells[-1, -1]), change(cells[0, -1], cells[-1, 0]))
    return {"sweep_sprite_cells": float(np.mean([is_sprite(image) for image in images])),
            "sweep_neighbour_change": float(np.mean(pairs)), "sweep_corner_change": corners,
            "sweep_steps": steps}


def busiest_dims(loaded: Loaded, count: int = 2) -> tuple[int, ...]:
    """The code dimensions whose posterior means vary most over held-out items (the model file's
    validation record), the ones a sweep shows best."""
    variances = (loaded.record.get("valid") or {}).get("unit_variances")
    if not variances:
        return tuple(range(count))
    return tuple(sorted(range(len(variances)), key=lambda d: -variances[d])[:count])
