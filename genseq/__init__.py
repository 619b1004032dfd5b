"""genseq: text, audio and images as token sequences for autoregressive RNNs and a sentence VAE."""

__version__ = "0.1.0"
