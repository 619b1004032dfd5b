"""DropConnect on the recurrent weights (the AWD-LSTM's weight drop, Merity et al. 2018): measured, not shipped.

Ten CPU minutes on a small corpus read it several times over, and the models learn it by heart
(docs/sizing.md): the text LM's held-out bits stop falling, the sentence VAE gives back 0.47 of
its training lines' characters and 0.15 of held-out ones. Weight drop is the regulariser that
did most for small-corpus LMs in the AWD-LSTM, and it keeps the fused RNN kernels: each call
drops entries of the hidden-to-hidden matrices with one mask shared by every time step. This
prototype patches it into the text LM (``lm``) or the sentence VAE's decoder (``vae``), trains
on one thread and scores the run as the sizing sweeps do.

Run (the corpora from ``python bench/new_corpus.py --make DIR``; one thread each, two side by side):
    python bench/weight_drop.py lm DIR 0.3 RUN     # the text LM rule at --steps 1060, then eval
    python bench/weight_drop.py vae DIR 0.3 RUN    # the sentence VAE rule, ten minutes, then eval
"""

import json
import os
import subprocess
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.func import functional_call  # noqa: E402

from genseq.models.rnn import RNNLM  # noqa: E402
from genseq.models.vae import SequenceVAE  # noqa: E402
from genseq.tasks import train  # noqa: E402
from genseq.train import TrainConfig  # noqa: E402


def dropped_call(rnn, inputs, state, rate: float):
    """``rnn(inputs, state)`` with each ``weight_hh`` entry dropped at ``rate`` while training.
    The weights are cast to autocast's dtype before dropping, so that the dropped copy reaches the
    fused bf16 kernel as the weights themselves do; the measured cost is the training rate in
    bench/results/text_lm_sweep.json (7,025 tokens/s at 0.3 against the rule's 7,472)."""
    if not rnn.training:
        return rnn(inputs, state)
    device = inputs.device.type
    cast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    dropped = {name: F.dropout(weight if cast is None else weight.to(cast), rate)
               for name, weight in rnn.named_parameters() if name.startswith("weight_hh")}
    return functional_call(rnn, dropped, (inputs, state))


def patch(rate: float) -> None:
    """Route the text LM's and the VAE decoder's recurrent calls through :func:`dropped_call`."""
    def through(method, name):
        def patched(self, *args, **kwargs):
            rnn = getattr(self, name)
            # an instance attribute shadows the registered module for the call, then goes
            object.__setattr__(self, name, lambda inputs, state: dropped_call(rnn, inputs, state, rate))
            try:
                return method(self, *args, **kwargs)
            finally:
                del self.__dict__[name]
        return patched

    RNNLM.forward = through(RNNLM.forward, "rnn")
    SequenceVAE.decode = through(SequenceVAE.decode, "decoder")


def main(task: str, corpora: str, rate: float, run: str) -> None:
    torch.set_num_threads(1)
    patch(rate)
    cpu = torch.device("cpu")
    if task == "lm":  # the text LM rule where the CPU computes bf16 natively, at the sweep's fixed steps
        train("lm", f"{corpora}/prose_train.txt", run, model_config={}, codec_options={"tokenizer": "auto"},
              device=cpu, progress=False, train_config=TrainConfig(steps=1060, lr=2e-3, precision="bf16"))
        scored = [(f"{corpora}/prose_test.txt", f"{run}/best.pt", [])]
    else:  # the sentence VAE rule (genseq.sizing.CPU_TEXT_VAE), spelled out for the Python API
        train("vae", f"{corpora}/sayings_train.txt", run, device=cpu, progress=False,
              model_config=dict(hidden_size=256, embed_dim=128, free_bits=4.0, word_dropout=0.3,
                                kl_schedule="constant"),
              codec_options={"tokenizer": "auto", "vocab_size": 1000},
              train_config=TrainConfig(minutes=10, lr=2e-3, batch_size=32))
        scored = [(f"{corpora}/sayings_test.txt", run, ["--iw-samples", "1"]),
                  (f"{corpora}/sayings_train.txt", run, ["--iw-samples", "1", "--limit", "300"])]
    for path, model, extra in scored:
        out = subprocess.run(["genseq", "eval", path, "-m", model, "--json", *extra],
                             capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        keys = ("bits_per_char", "recon_char_accuracy", "recon_char_accuracy_refined", "kl", "active_units")
        print(path, {key: result[key] for key in keys if key in result})


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in ("lm", "vae"):
        sys.exit(__doc__.split("Run")[1])
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
