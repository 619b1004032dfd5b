"""Model families. Each is rebuilt from its config dataclass, which the model file stores."""

from dataclasses import asdict

from genseq.errors import GenseqError
from genseq.models.frame import FrameConfig, FrameLM
from genseq.models.image_vae import ImageVAE, ImageVAEConfig
from genseq.models.rnn import RNNConfig, RNNLM
from genseq.models.vae import SequenceVAE, VAEConfig

FAMILIES = {RNNLM.family: (RNNConfig, RNNLM), FrameLM.family: (FrameConfig, FrameLM),
            SequenceVAE.family: (VAEConfig, SequenceVAE), ImageVAE.family: (ImageVAEConfig, ImageVAE)}


def build_model(family: str, config: dict):
    """A freshly initialised model of ``family`` from a config dict (as stored in model files)."""
    if family not in FAMILIES:
        raise GenseqError(f"the model is of family {family!r} that this genseq does not know; "
                          "upgrade genseq")
    config_cls, model_cls = FAMILIES[family]
    try:
        return model_cls(config_cls(**config))
    except TypeError as e:
        raise GenseqError(f"the model's config does not fit this genseq ({e}); upgrade genseq") from None


def model_config(model) -> dict:
    return asdict(model.config)


__all__ = ["FAMILIES", "FrameConfig", "FrameLM", "ImageVAE", "ImageVAEConfig", "RNNConfig", "RNNLM", "SequenceVAE", "VAEConfig",
           "build_model", "model_config"]
