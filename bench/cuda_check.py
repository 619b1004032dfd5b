"""CUDA correctness: the shipped frame models give the same logits on the GPU as on the CPU.

Loads `speech` and `sprites` on both devices, scores the same random ids (3,000 samples; one
1,024-pixel sprite) and prints the largest logit difference. Needs a CUDA GPU; says so otherwise.
Run: python bench/cuda_check.py
"""

import sys

import torch

from genseq.store import load_model


def main():
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU here; run this on a machine with one")
    torch.manual_seed(0)
    for name, length in (("speech", 3001), ("sprites", 1025)):
        cpu, gpu = (load_model(name, torch.device(d)) for d in ("cpu", "cuda"))
        ids = torch.randint(cpu.codec.vocab_size - 1, (2, length))
        with torch.inference_mode():
            a, b = cpu.model(ids)[0], gpu.model(ids.cuda())[0].cpu()
        print(f"{name}: max |logit cpu - cuda| = {(a - b).abs().max().item():.4f}")


if __name__ == "__main__":
    main()
