"""Sequence VAE (Bowman et al. 2016, "Generating Sentences from a Continuous Space").

A bidirectional RNN encodes a whole sequence into a Gaussian posterior q(z|x); an RNN decoder,
initialised from z and fed z at every step, models p(x|z) autoregressively. Posterior collapse,
the field's known failure, is fought on four fronts, each a config switch:

- KL annealing: ``linear``, ``logistic`` (Bowman) or ``cyclical`` (Fu et al. 2019);
- token dropout on the decoder's inputs (Bowman), so the decoder must lean on z;
- free bits (Kingma et al. 2016): a per-dimension KL floor below which KL is not penalised;
- autoencoder pretraining (Li et al. 2019): train with no KL term first, then reset the decoder.

Two posteriors, once trained. The encoder the decoder was trained with gives the codes that
reconstruction, interpolation and traversal decode. The proposal, a copy of the encoder fitted
afterwards to the frozen decoder on the plain ELBO (:func:`genseq.vae.fit_proposal`), gives the
likelihood: ELBO, KL and IW-NLL. Free bits let the training encoder hold far more than the ELBO
wants, a poor proposal for importance sampling; fitting the encoder itself to the ELBO, as genseq
did before, threw that away and the codes with it (docs/sizing.md measures how much). A model
without a proposal (older files) uses its encoder for both.

Sequences here are (B, T) ids laid out as ``bos x_1 .. x_n eos pad ..``: the encoder reads
``x_1 .. eos``, the decoder reads ``bos x_1 .. x_n`` and predicts ``x_1 .. eos``.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from genseq.codecs.base import BOS, PAD, UNK
from genseq.generate import repeat_state, select_state
from genseq.models.rnn import CELLS

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig:
    vocab_size: int
    cell: str = "gru"
    embed_dim: int = 256
    hidden_size: int = 512
    latent_dim: int = 32
    dropout: float = 0.1          # on embeddings and decoder outputs
    # the training objective, saved with the model so that a run is reproducible
    word_dropout: float = 0.25    # share of decoder inputs replaced by unk
    free_bits: float = 0.5        # KL floor per latent dimension, nats (0: off)
    kl_schedule: str = "cyclical"  # constant | linear | logistic | cyclical
    kl_anneal_steps: int = 2000   # ramp length (linear, logistic) or cycle length (cyclical)
    kl_cycles: int = 4            # cyclical: cycles before the weight stays at beta
    beta: float = 1.0             # final KL weight
    ae_pretrain_steps: int = 0    # steps with no KL term before the decoder is reset (0: off)
    bow_weight: float = 0.0       # weight of the code's bag-of-words loss (Zhao et al. 2017; 0: off)
    splice: float = 0.0           # share of training rows that join two lines at a word start (0: off)
    proposal: bool = False        # holds a q(z|x) fitted for importance sampling apart from the encoder


KL_SCHEDULES = ("constant", "linear", "logistic", "cyclical")


def kl_weight(config: VAEConfig, step: int) -> float:
    """The KL term's weight at optimizer ``step`` (counted after autoencoder pretraining)."""
    n = max(1, config.kl_anneal_steps)
    if config.kl_schedule == "linear":
        ramp = min(1.0, step / n)
    elif config.kl_schedule == "logistic":
        ramp = 1 / (1 + math.exp(-10 * (step - n / 2) / n))
    elif config.kl_schedule == "cyclical":  # ramp over the first half of each cycle, then hold
        ramp = 1.0 if step >= n * config.kl_cycles else min(1.0, (step % n) / (n / 2))
    else:
        ramp = 1.0
    return config.beta * ramp


class VAEObjective:
    """The training objective every VAE here shares, given its ``encode(tokens) -> (mean,
    logvar)``, ``reconstruction_nll(tokens, z) -> (B,)`` and a config with the objective's fields
    (free bits, the KL schedule, autoencoder pretraining)."""

    def add_proposal(self) -> None:
        """A fresh proposal: a copy of the encoder, for :func:`genseq.vae.fit_proposal` to fit."""
        self.proposal = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder),
                                       "posterior": copy.deepcopy(self.posterior)})
        self.config.proposal = True

    def drop_proposal(self) -> None:
        """Forget the proposal (one fitted to another decoder, as a fine-tuned model's is)."""
        self.proposal = None
        self.config.proposal = False

    def encoding(self, proposal: bool) -> tuple[nn.Module, nn.Module]:
        """The encoder and posterior layer that give q(z|x): the proposal's where asked for and
        fitted, otherwise the encoder's."""
        if proposal and self.proposal is not None:
            return self.proposal["encoder"], self.proposal["posterior"]
        return self.encoder, self.posterior

    def elbo_terms(self, tokens: torch.Tensor, with_code: bool = False, proposal: bool = False):
        """The negative ELBO's two terms, averaged over the batch: -log p(x|z) for one z drawn
        from q(z|x) (reparameterised; the proposal's with ``proposal``), and the KL of each
        latent dimension (Z,); with ``with_code`` also that z (B, Z)."""
        mean, logvar = self.encode(tokens, proposal)
        z = reparameterize(mean, logvar, torch.randn_like(mean))
        terms = self.reconstruction_nll(tokens, z).mean(), gaussian_kl(mean, logvar).mean(0)
        return (*terms, z) if with_code else terms

    def penalised_kl(self, kl_dims: torch.Tensor) -> torch.Tensor:
        """Each latent dimension's KL (Z,) as free bits count it: one below the floor counts as
        the floor (Kingma et al. 2016)."""
        return kl_dims.clamp(min=self.config.free_bits) if self.config.free_bits > 0 else kl_dims

    def loss(self, tokens: torch.Tensor, step: int = 0) -> dict:
        """Negative ELBO with the annealed KL weight and free bits, averaged over sequences."""
        config = self.config
        pretraining = step < config.ae_pretrain_steps
        rec, kl_dims, z = self.elbo_terms(tokens, with_code=True)
        kl_penalised = self.penalised_kl(kl_dims)
        beta = 0.0 if pretraining else kl_weight(config, step - config.ae_pretrain_steps)
        # neg_elbo: the objective without free bits or annealing, what validation reports as its loss
        stats = {"loss": rec + beta * kl_penalised.sum(), "rec": rec.detach(), "kl": kl_dims.sum().detach(),
                 "neg_elbo": (rec + kl_dims.sum()).detach(), "beta": torch.tensor(beta)}
        if config.free_bits > 0:  # the objective at full KL weight: what the overfitting watch compares
            stats["objective"] = (rec + kl_penalised.sum()).detach()
        if getattr(self, "bow", None) is not None:  # the sequence VAE's bag-of-words loss
            bow = self.bag_of_words_nll(tokens, z)
            stats.update(loss=stats["loss"] + config.bow_weight * bow, bow=bow.detach())
        return stats


class SequenceVAE(VAEObjective, nn.Module):
    family = "vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        E, H, Z = config.embed_dim, config.hidden_size, config.latent_dim
        self.embed = nn.Embedding(config.vocab_size, E, padding_idx=PAD)
        self.encoder = CELLS[config.cell](E, H, batch_first=True, bidirectional=True)
        self.posterior = nn.Linear(2 * H, 2 * Z)
        self.latent_to_state = nn.Linear(Z, H)
        self.decoder = CELLS[config.cell](E + Z, H, batch_first=True)
        self.head = nn.Linear(H, config.vocab_size)
        self.drop = nn.Dropout(config.dropout)
        self.bow = nn.Linear(Z, config.vocab_size) if config.bow_weight > 0 else None
        self.proposal = None  # the proposal's "encoder" and "posterior" once fitted (add_proposal)
        if config.proposal:
            self.add_proposal()

    # -- encoder -------------------------------------------------------------------------------
    def encode(self, tokens: torch.Tensor, proposal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (B, T) in the ``bos x eos pad`` layout -> posterior mean and log-variance (B, Z),
        the encoder's or, with ``proposal``, the proposal's (:meth:`encoding`)."""
        encoder, posterior = self.encoding(proposal)
        body = tokens[:, 1:]
        lengths = (body != PAD).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.drop(self.embed(body)), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, final = encoder(packed)
        if isinstance(final, tuple):  # LSTM: (h, c)
            final = final[0]
        mean, logvar = posterior(torch.cat([final[0], final[1]], -1)).chunk(2, -1)
        return mean, logvar

    # -- decoder -------------------------------------------------------------------------------
    def initial_state(self, z: torch.Tensor):
        h = torch.tanh(self.latent_to_state(z)).unsqueeze(0)
        return (h, torch.zeros_like(h)) if self.config.cell == "lstm" else h

    def decode(self, tokens: torch.Tensor, z: torch.Tensor, state=None):
        """tokens: (B, T) decoder inputs, z: (B, Z) -> logits (B, T, V) and the state. Without
        ``state`` the decoder starts from z. A decoder trained with word dropout 1 only ever saw
        unk after bos, so it reads unk whatever it is given: scoring and decoding match training."""
        if self.config.word_dropout >= 1.0:
            tokens = tokens.masked_fill((tokens != BOS) & (tokens != PAD), UNK)
        if state is None:
            state = self.initial_state(z)
        inputs = torch.cat([self.drop(self.embed(tokens)), z.unsqueeze(1).expand(-1, tokens.size(1), -1)], -1)
        hidden, state = self.decoder(inputs, state)
        return self.head(self.drop(hidden)), state

    def reset_decoder(self, seed: int = 0) -> None:
        """Fresh decoder weights, drawn from ``seed`` (the same on every rank of a torchrun job)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in (self.latent_to_state, self.decoder, self.head):
                module.reset_parameters()

    # -- objective -----------------------------------------------------------------------------
    def reconstruction_nll(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats per sequence, (B,)."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        if self.training and self.config.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=inputs.device) < self.config.word_dropout
            drop[:, 0] = False  # keep bos
            inputs = inputs.masked_fill(drop & (inputs != PAD), UNK)
        logits, _ = self.decode(inputs, z)
        nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD, reduction="none")
        return nll.sum(1)

    def bag_of_words_nll(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log of each token of a sequence under one softmax from z, ignoring order, averaged over
        the batch (Zhao et al. 2017): it asks the code to say what a line holds, which the
        decoder alone cannot learn to do without."""
        targets = tokens[:, 1:]
        logp = self.bow(z).log_softmax(-1).gather(1, targets)
        return -(logp * (targets != PAD)).sum(1).mean()


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """A draw z = mean + eps * std from N(mean, exp(logvar)) that gradients pass through;
    ``eps`` ~ N(0, I) holds the draws' shape ((B, Z), or (K, B, Z) for K draws each)."""
    return mean + eps * (0.5 * logvar).exp()


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per dimension, same shape as ``mean``."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp()).sum(-1)


def log_mixture_density(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """log of the equal mixture of the Gaussians N(means[j], exp(logvars[j])) at each row of z,
    (N,) for z (N, Z) and (M, Z) components; ``chunk`` rows at a time, so memory holds chunk x M."""
    return torch.cat([torch.logsumexp(gaussian_log_density(z[i:i + chunk, None], means, logvars), 1)
                      for i in range(0, len(z), chunk)]) - math.log(len(means))


class LatentDecoder(nn.Module):
    """The decoder with z fixed, meeting :class:`genseq.generate.Autoregressive`, so that
    :func:`genseq.generate.generate` and beam search decode a VAE's latent codes unchanged.
    It never proposes ``unk``: a decoded line is made of tokens the model knows."""

    prime_once = False  # each row has its own z, so a shared prime cannot be run once for all
    sample_fast = None
    repeat_state = staticmethod(repeat_state)
    select_state = staticmethod(select_state)

    def __init__(self, vae: SequenceVAE, z: torch.Tensor, adjust=None):
        """``adjust``: applied to every step's logits (a codec's :meth:`~genseq.codecs.Codec.greedy_logits`)."""
        super().__init__()
        self.vae, self.z, self.adjust = vae, z, adjust

    def forward(self, tokens: torch.Tensor, state=None):
        z = self.z if self.z.size(0) == tokens.size(0) else self.z.repeat_interleave(
            tokens.size(0) // self.z.size(0), 0)
        logits, state = self.vae.decode(tokens, z, state)
        logits = logits.index_fill(-1, torch.tensor([UNK], device=logits.device), float("-inf"))
        return (logits if self.adjust is None else self.adjust(logits)), state

    def prime(self, tokens: torch.Tensor, progress=None):
        return self(tokens)

    def step(self, token: torch.Tensor, state):
        logits, state = self(token.unsqueeze(1), state)
        return logits.squeeze(1), state
