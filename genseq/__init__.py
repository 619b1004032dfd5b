"""genseq: text, audio and images as token sequences for autoregressive RNNs and a sentence VAE.

    import genseq
    poems = genseq.load("poems")
    poems.interpolate("床前明月光", "春眠不觉晓", steps=8)
"""

__version__ = "0.1.0"

from genseq.api import Model, load, models, train  # noqa: E402
from genseq.errors import GenseqError  # noqa: E402

__all__ = ["GenseqError", "Model", "load", "models", "train", "__version__"]
