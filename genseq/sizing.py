"""What a run chooses for the settings its user left unset: a model that learns within the budget
on the machine at hand.

The defaults in the config dataclasses are the shipped models' sizes, which had GPU minutes. On a
CPU the same sizes take a few hundred steps in ten minutes and learn little; smaller ones take
thousands. Each rule below names the measurement behind it (``bench/new_corpus.py``, corpora
genseq never ships, ten minutes on a 2-core CPU; figures in docs/sizing.md). An explicit flag
always wins, and the run says what it chose and why in one line, which the model file keeps.
"""

import torch

from genseq.device import native_bf16

# Text keeps its size on a CPU too: on the fortunes prose, ten minutes on one thread, the 2 x 512
# RNN (672 steps) scores 2.308 bits/char on held-out text and a 2 x 256 one (1,573 steps) 2.345.
# On a CPU that computes bf16 natively it trains in mixed precision, 1.6 times the steps, at a
# lower peak learning rate: 2.322 -> 2.272 bits/char side by side (docs/sizing.md).
CPU_TEXT_LM = dict(precision="bf16", lr=2e-3)
#
# A small text corpus is learnt by heart within minutes, on any device: on 2,741 English sayings
# (136 KB), ten minutes on one thread, the shipped size scores 88.2 held-out nats per line at its
# best validation (step 250) and 116.5 at the end; one layer of 256 units with 1,000 pieces and
# dropout 0.3 scores 80.8 at its best (step 500) and 90.1 at the end. On prose the small model
# wins at 526 KB (2.540 bits/char against 2.750 at the end) and the shipped size at 977 KB (2.410
# against 2.423), so the line is drawn between them (docs/sizing.md).
SMALL_TEXT_CORPUS = 750_000  # UTF-8 bytes of the training split
SMALL_TEXT_LM = dict(hidden_size=256, embed_dim=128, num_layers=1, vocab_size=1000, dropout=0.3)
#
# Audio on a CPU: espeak-ng speech, ten minutes on one thread: the shipped size 4.063 bits/sample,
# 256 units over 32-sample frames 3.931, and the same on batches of 16 windows of 1,024 samples
# 3.673 (docs/sizing.md).
#
# A small image corpus overfits a large frame tier long before a budget runs out: on the lecture's
# 712 sprites, tiers of 512, 256, 128 and 64 units score 1.658, 1.634, 1.559 and 1.541 nats/pixel
# (docs/results.md), and 64 units with dropout 0.3 reach the lecture's bar in ten CPU minutes.
SMALL_IMAGE_CORPUS = 5000

# The image VAE on the creatures' 699 sprites, ten minutes on one thread: batches of 64 at lr 1e-3
# take 2.3 times fewer steps than batches of 32 at 2e-3 and score the same per step (2,111 and
# 2,118 nats of held-out negative ELBO at step 500).
IMAGE_VAE = dict(batch_size=32, lr=2e-3)

CPU_AUDIO_LM = dict(hidden_size=256, frame=32, batch_size=16, seq_len=1024)
# The sentence VAE on a CPU: on 2,891 English sayings, ten minutes, it learns its lines by heart
# (docs/sizing.md). Splicing 0.3 of each batch (two lines joined where a word starts, new every
# step) and a 64-dim code, side by side at 4,490 steps on one thread: held-out reconstruction
# 0.163 / 0.178 -> 0.185 / 0.198 (posterior means / refined codes), IW-NLL 97.3 -> 89.8 nats per
# held-out line. With the codes of the encoder as trained (a proposal measures the likelihood), a
# 128-dim code gives back 0.203 of held-out and 0.787 of training characters from posterior
# means, against 0.182 and 0.685 for 64 dimensions, at 92.6 nats against 89.8. Then a floor of 1 nat
# per dimension (of 4), at the same steps, with eval's IW-NLL from a q fitted to each line: 83.6
# nats against 87.0, training lines 0.634 / 0.895 (means / refined codes) against 0.787 / 0.910,
# held-out 0.188 / 0.277 against 0.203 / 0.276: the refined codes that interpolate and reconstruct
# decode give back as much, at a likelihood within 2 nats of the LM's.
CPU_TEXT_VAE = dict(hidden_size=256, embed_dim=128, batch_size=32, lr=2e-3, vocab_size=1000, free_bits=1.0,
                    word_dropout=0.3, kl_schedule="constant", latent_dim=128, splice=0.3)


FLAGS = {"hidden_size": "--hidden", "embed_dim": "--embed", "num_layers": "--layers", "latent_dim": "--latent"}


def choose(task: str, kind: str, train_items: int, device: torch.device, given: dict,
           arch: str = "auto", text_bytes: int | None = None) -> tuple[dict, str]:
    """The settings to use for those of ``given`` that are None (unset), and one line that says
    which and why; ({}, "") when the dataclass defaults stand.

    Args:
        task: ``lm`` or ``vae``.
        kind: ``text``, ``audio`` or ``image``.
        train_items: lines, clips or images in the training split.
        device: where the run trains; a CPU gets models sized for its few steps per minute.
        given: every setting by name (``hidden_size``, ``batch_size``, ``vocab_size`` ...), None
            for those the user left to the run.
        arch: the language model's ``--arch`` (the rules are for the default architecture).
        text_bytes: text: the training split's size in UTF-8 bytes.
    """
    cpu = device.type == "cpu"
    rule, why = {}, ""
    if task == "lm" and arch == "auto":
        if kind == "image" and train_items <= SMALL_IMAGE_CORPUS:
            rule = dict(hidden_size=64 if train_items <= 1000 else 128, dropout=0.3)
            why = f"{train_items:,} images overfit a larger frame tier"
        elif kind == "audio" and cpu:
            rule, why = CPU_AUDIO_LM, "a smaller frame tier over longer frames, on smaller batches, takes more steps in a CPU budget"
        elif kind == "text":
            reasons = []
            if text_bytes is not None and text_bytes <= SMALL_TEXT_CORPUS:
                rule = dict(SMALL_TEXT_LM)
                reasons.append(f"{text_bytes / 1000:,.0f} KB of text overfit the shipped size within minutes")
            if native_bf16(device) and given.get("precision") in (None, "bf16"):
                rule.update(CPU_TEXT_LM)
                reasons.append("this CPU computes bf16 natively, so mixed precision takes more steps in a budget")
            why = "; ".join(reasons)
    elif task == "vae" and kind == "image" and arch in ("auto", "conv"):
        rule, why = IMAGE_VAE, "the image VAE learns more from more, smaller steps"
    elif task == "vae" and kind == "text" and cpu:
        rule = CPU_TEXT_VAE
        why = ("a smaller VAE with a floor of 1 nat per code dimension reconstructs most in a CPU budget, "
               "and spliced lines keep it from learning them by heart")
    chosen = {key: value for key, value in rule.items() if given.get(key) is None}
    if not chosen:
        return {}, ""
    flags = " ".join(f"{FLAGS.get(key, '--' + key.replace('_', '-'))} {value}" for key, value in chosen.items())
    items = {"text": "lines", "audio": "clips", "image": "images"}[kind]
    return chosen, f"chose {flags} for {train_items:,} training {items} " \
                   f"on the {'CPU' if cpu else device.type.upper()}: {why} (flags override)"
