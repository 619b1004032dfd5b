"""Training throughput: genseq's Trainer against bare loops of the same shape, in one process.

  - bare_gru: nn.GRU forward + backward on random inputs of the model's shape (no embedding, no
    softmax, no optimizer): the floor of what any trainer can reach;
  - bare_lm: the same RNNLM, forward + cross-entropy + backward + AdamW step on pre-made batches;
  - trainer: genseq.train.Trainer.fit on a token stream (batching, LR schedule, clipping, logging,
    no validation in the timed part).
Trainer overhead is 1 - trainer / bare_lm. Run: python bench/train_overhead.py [--steps 60]
"""

import json
import tempfile

import torch

from genseq.codecs.base import Codec
from genseq.data import TokenWindows
from genseq.models import RNNConfig, RNNLM
from genseq.train import Trainer, TrainConfig

from common import best_of, make_parser


class NoCodec(Codec):
    """Stands in for a codec: the benchmark trains on random ids and saves nothing that needs one."""

    kind, unit = "none", "token"
    vocab_size = encode = decode = encode_stream = prime = from_state = None

    def state_dict(self):
        return {"kind": self.kind}


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embed", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(0)
    B, T = args.batch, args.seq_len
    tokens = B * T * args.steps

    gru = torch.nn.GRU(args.embed, args.hidden, args.layers, batch_first=True)
    x = torch.randn(B, T, args.embed)

    def bare_gru(steps):
        for _ in range(steps):
            out, _ = gru(x)
            out.sum().backward()

    config = RNNConfig(vocab_size=args.vocab, embed_dim=args.embed, hidden_size=args.hidden,
                       num_layers=args.layers)
    stream = torch.randint(args.vocab, (200_000,), dtype=torch.int32)
    model = RNNLM(config)
    optimizer = torch.optim.AdamW(model.parameters())
    size = B * (T + 1)
    batches = [stream[i * size:(i + 1) * size].view(B, T + 1).long() for i in range(8)]

    def bare_lm(steps):
        for s in range(steps):
            loss = model.loss(batches[s % 8])["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def trainer(steps):
        with tempfile.TemporaryDirectory() as run:
            data = TokenWindows(stream, T, B, seed=0)
            fit = Trainer(RNNLM(config), NoCodec(), "lm", data, lambda m: {"loss": 0.0},
                          TrainConfig(steps=steps, valid_every=10**9, log_every=10), run,
                          torch.device("cpu"), progress=False)
            fit.save = lambda: None  # time the loop, not the final file write
            fit.fit()

    # one timed call of each after a 3-step warm-up
    results = {name: tokens / best_of(fn, 1, args.steps, warmup=lambda fn=fn: fn(3))
               for name, fn in [("bare_gru", bare_gru), ("bare_lm", bare_lm), ("trainer", trainer)]}
    report = {f"{k}_tokens_per_s": round(v) for k, v in results.items()}
    report["trainer_vs_bare_lm"] = round(results["trainer"] / results["bare_lm"], 3)
    report["trainer_vs_bare_gru"] = round(results["trainer"] / results["bare_gru"], 3)
    report["trainer_overhead_vs_bare_lm"] = round(1 - results["trainer"] / results["bare_lm"], 3)
    print(json.dumps({"shape": vars(args), "threads": torch.get_num_threads(), **report}, indent=1))


if __name__ == "__main__":
    main()
