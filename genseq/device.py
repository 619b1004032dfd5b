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


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU that computes in bf16 natively (AVX512-BF16 or AMX), where
    mixed precision trains a text RNN 1.6 times as fast as float32 (7,472 against 4,622 tokens/s on
    one thread, ``bench/results/text_lm_sweep.json``). Other CPUs emulate bf16 in software; GPUs
    are not asked."""
    if device.type != "cpu":
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)
