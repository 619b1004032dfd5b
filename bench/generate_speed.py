"""Generation speed: per-token cost must not grow with length, and must beat re-running the prefix.

Measures, in one process on one model (the shipped text LM's shape unless told otherwise):
  - tokens/s of ``genseq.generate`` for 500 and for 5,000 tokens (batch 1): the ratio should be ~1;
  - tokens/s of the naive loop that re-runs the whole prefix for every new token (500 tokens);
  - tokens/s with a batch of 8 sequences.
Run: python bench/generate_speed.py [--hidden 384 --layers 2 --vocab 2000 --threads 1]
"""

import json

import torch

from genseq.generate import generate, sample_next
from genseq.models import RNNConfig, RNNLM

from common import best_of, make_parser


def tokens_per_s(fn, tokens: int, repeat: int = 3) -> float:
    """``tokens`` over the best time of ``fn(tokens)``, after a warm-up call ``fn(min(tokens, 20))``."""
    return tokens / best_of(fn, repeat, tokens, warmup=lambda: fn(min(tokens, 20)))


@torch.inference_mode()
def naive(model, prime, steps):
    sequence = torch.tensor([prime])
    for _ in range(steps):
        logits, _ = model(sequence)
        token = sample_next(logits[:, -1], 1.0, 0, 1.0, None)
        sequence = torch.cat([sequence, token[:, None]], 1)
    return sequence


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--embed", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RNNLM(RNNConfig(vocab_size=args.vocab, embed_dim=args.embed, hidden_size=args.hidden,
                            num_layers=args.layers)).eval()
    prime = [3, 10, 11, 12]
    results = {
        "generate_500": tokens_per_s(lambda n: generate(model, prime, n, seed=0), 500),
        "generate_5000": tokens_per_s(lambda n: generate(model, prime, n, seed=0), 5000, repeat=1),
        "naive_500": tokens_per_s(lambda n: naive(model, prime, n), 500, repeat=1),
        "generate_500_batch8": 8 * tokens_per_s(lambda n: generate(model, prime, n, batch=8, seed=0), 500),
    }
    results["ratio_5000_vs_500"] = results["generate_5000"] / results["generate_500"]
    results["speedup_vs_naive_500"] = results["generate_500"] / results["naive_500"]
    results["batch8_vs_batch1"] = results["generate_500_batch8"] / results["generate_500"]
    print(json.dumps({"model": vars(args), **{k: round(v, 2) for k, v in results.items()}}, indent=1))


if __name__ == "__main__":
    main()
