"""Where to run: ``auto`` picks CUDA, then Apple's MPS, then the CPU."""

import torch

from genseq.errors import GenseqError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise GenseqError("--device cuda was asked for but no CUDA GPU is visible; use --device auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GenseqError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    if name not in DEVICES:
        raise GenseqError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    return torch.device(name)
