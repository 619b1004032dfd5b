"""An image VAE whose decoder draws every pixel at once (the lecture's VAE, with 1-of-N pixels).

A convolutional encoder reads an image's palette ids into a Gaussian posterior q(z|x); a
transposed-convolution decoder turns z into a categorical distribution over the palette (and
transparency) at every pixel, independent given z. A decoded image is therefore made of real
palette colours by construction, and every pixel it draws comes from the code: nothing for the
code to lose to an autoregressive decoder, so sweeps of the code move the picture.

It reads the same ``bos x_1 .. x_n eos`` rows as the sequence VAE (the codec's ids, from
``offset`` on), trains with the same objective (:class:`~genseq.models.vae.VAEObjective`) and is
measured by the same metrics; only decoding differs (:meth:`ImageVAE.render`).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genseq.models.vae import VAEObjective

DOWN = 3  # stride-2 stages: the code's grid is the image's size / 8


@dataclass
class ImageVAEConfig:
    vocab_size: int
    height: int
    width: int
    offset: int                   # the first pixel id (ids below are the VAE's specials)
    classes: int                  # palette colours, plus one for transparency if the corpus has any
    channels: int = 32            # of the first convolution; each stage down doubles them
    embed_dim: int = 16           # a pixel id's embedding, the encoder's input
    latent_dim: int = 10          # the lecture's ten sliders
    dropout: float = 0.2          # of whole feature maps in the decoder: 700 sprites overfit without it
    # the training objective (see VAEConfig)
    free_bits: float = 0.0
    kl_schedule: str = "linear"
    kl_anneal_steps: int = 2000
    kl_cycles: int = 4
    beta: float = 1.0
    ae_pretrain_steps: int = 0
    proposal: bool = False        # holds a q(z|x) fitted for importance sampling (see VAEConfig)


class ImageVAE(VAEObjective, nn.Module):
    family = "image_vae"

    def __init__(self, config: ImageVAEConfig):
        super().__init__()
        self.config = config
        C, Z = config.channels, config.latent_dim
        self.grid = (math.ceil(config.height / 2 ** DOWN), math.ceil(config.width / 2 ** DOWN))
        inner = C * 2 ** (DOWN - 1) * self.grid[0] * self.grid[1]
        self.embed = nn.Embedding(config.classes, config.embed_dim)
        widths = [config.embed_dim] + [C * 2 ** i for i in range(DOWN)]
        self.encoder = nn.Sequential(*[layer for a, b in zip(widths, widths[1:])
                                       for layer in (nn.Conv2d(a, b, 4, 2, 1), nn.GELU())])
        self.posterior = nn.Linear(inner, 2 * Z)
        self.latent_to_grid = nn.Linear(Z, inner)
        up = widths[:0:-1] + [C]
        self.decoder = nn.Sequential(*[layer for a, b in zip(up, up[1:])
                                       for layer in (nn.GELU(), nn.Dropout2d(config.dropout),
                                                     nn.ConvTranspose2d(a, b, 4, 2, 1))], nn.GELU())
        self.head = nn.Conv2d(C, config.classes, 1)
        self.proposal = None  # the proposal's "encoder" and "posterior" once fitted (add_proposal)
        if config.proposal:
            self.add_proposal()

    def pixels(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) rows ``bos x eos`` -> (B, H, W) class ids (0 .. classes-1)."""
        c = self.config
        return (tokens[:, 1:1 + c.height * c.width] - c.offset).view(-1, c.height, c.width)

    def encode(self, tokens: torch.Tensor, proposal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (B, T) rows ``bos x eos`` -> posterior mean and log-variance (B, Z), the
        encoder's or, with ``proposal``, the proposal's (:meth:`encoding`)."""
        encoder, posterior = self.encoding(proposal)
        x = self.embed(self.pixels(tokens)).permute(0, 3, 1, 2)
        pad_h, pad_w = (g * 2 ** DOWN - s for g, s in zip(self.grid, x.shape[2:]))
        features = encoder(F.pad(x, (0, pad_w, 0, pad_h)))
        return posterior(features.flatten(1)).chunk(2, -1)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, Z) -> class logits (B, classes, H, W)."""
        c = self.config
        grid = self.latent_to_grid(z).view(len(z), -1, *self.grid)
        return self.head(self.decoder(grid))[:, :, :c.height, :c.width]

    def reconstruction_nll(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats per image, (B,)."""
        return F.cross_entropy(self.logits(z), self.pixels(tokens), reduction="none").sum((1, 2))

    def render(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, Z) -> logits over the whole vocabulary at every pixel, (B, H*W, vocab_size), in
        raster order; ids that are no pixel get -inf."""
        c = self.config
        pixels = self.logits(z).flatten(2).transpose(1, 2)
        out = pixels.new_full((*pixels.shape[:2], c.vocab_size), float("-inf"))
        out[..., c.offset:c.offset + c.classes] = pixels
        return out

    def reset_decoder(self, seed: int = 0) -> None:
        """Fresh decoder weights, drawn from ``seed`` (autoencoder pretraining's end)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in (self.latent_to_grid, *self.decoder, self.head):
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
