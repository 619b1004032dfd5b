"""CUDA correctness: the shipped models give the same results on the GPU as on the CPU.

Loads `speech` and `sprites` on both devices, scores the same random ids (3,000 samples; one
1,024-pixel sprite) and prints the largest logit difference. Then the `poems` VAE's held-out
metrics on both devices (first 200 test lines; IW-NLL and refined reconstruction need gradients
through the RNNs in eval mode, which cuDNN does not do), and a few encoder-refit steps on each.
Needs a CUDA GPU; says so otherwise.
Run: python bench/cuda_check.py
"""

import sys

import torch

from genseq.codecs.text import read_text_corpus
from genseq.store import load_model
from genseq.tasks import VAETask
from genseq.train import TrainConfig
from genseq.vae import fit_proposal, vae_metrics

from common import ROOT

TEST = ROOT / "corpora/poems/wuyan/test.txt"


def vae_check(devices=("cpu", "cuda")) -> None:
    lines = read_text_corpus(TEST)[:200]
    for device in devices:
        loaded = load_model("poems", torch.device(device))
        metrics = vae_metrics(loaded.model, loaded.codec, lines, iw_samples=10, refine=10)
        data, _ = VAETask.data(loaded.codec, lines, TrainConfig(batch_size=32))
        refit = fit_proposal(loaded.model, data, steps=5, progress=False)
        print(f"poems on {device}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in
              ("iw_nll", "neg_elbo", "kl", "recon_char_accuracy", "recon_char_accuracy_refined"))
              + f"; 5 proposal steps: kl {refit['kl']:.3f}")


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
    vae_check()


if __name__ == "__main__":
    main()
