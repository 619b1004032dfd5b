"""A sampler that tempers the body of each audio sample's distribution and keeps its tail: measured, not shipped.

The piano model hisses when it samples its whole distribution and stops striking notes when it
is truncated (top-k, top-p) or cooled (temperature 0.8): the attacks live in its tail
(docs/results.md). This prototype asks whether the hiss lives in the body instead. For each
sample it finds the likeliest mu-law level m and splits the levels into the body, |v - m| <= D,
and the tail. With the model's own probability of the tail it draws from the tail as the model
would; otherwise it draws from the body at temperature TC (0: the likeliest level). So new notes
come as often as the model says, and the body's jitter, the would-be hiss, is cooled.

Each SPEC ``D:TC`` runs bench/audio_quality.py's listening test on the piano's clips (the two
test chorales, the plucked and the sine melody; 3 s primes, 8 s continuations, 3 takes, seed 0),
through the general step-by-step sampler with this draw in place of
:func:`genseq.generate.sample_next`, and writes every row to ``--out``.
Run: OMP_NUM_THREADS=1 python bench/tail_sampler.py 8:0.8 16:0.8 [--model piano]
"""

import time

import torch

import genseq.generate
from genseq.store import load_model

import audio_quality
from common import ROOT, make_parser, write_result


def body_and_tail(width: int, body_temperature: float):
    """A stand-in for :func:`genseq.generate.sample_next` (it ignores the caller's settings)."""
    def draw(logits, temperature, top_k, top_p, generator):
        logits = logits.float()
        p = logits.softmax(-1)
        mode = p.argmax(-1, keepdim=True)
        body = (torch.arange(p.size(-1)) - mode).abs() <= width
        tail = p.masked_fill(body, 0)
        if body_temperature > 0:
            cooled = (logits / body_temperature).masked_fill(~body, -float("inf")).softmax(-1)
            from_body = torch.multinomial(cooled, 1, generator=generator).squeeze(1)
        else:
            from_body = mode.squeeze(1)
        from_tail = torch.multinomial(tail + 1e-30, 1, generator=generator).squeeze(1)
        in_tail = torch.rand(p.size(0), generator=generator) < tail.sum(-1)
        return torch.where(in_tail, from_tail, from_body)
    return draw


def main():
    parser = make_parser(__doc__)
    parser.add_argument("specs", nargs="+", metavar="D:TC", help="body half-width in levels : body temperature")
    parser.add_argument("--model", default="piano")
    parser.add_argument("--out", default=str(ROOT / "bench/results/tail_sampler.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.model)
    clips = audio_quality.piano_clips(loaded)
    result = {"model": str(loaded.path), "specs": {}}
    for spec in args.specs:
        width, body_temperature = spec.split(":")
        genseq.generate.sample_next = body_and_tail(int(width), float(body_temperature))
        print(f"body |v - m| <= {width}, body temperature {body_temperature}, the tail as the model has it:")
        start = time.perf_counter()
        # top_p < 1 sends generation down the step-by-step path, which calls sample_next
        result["specs"][spec] = audio_quality.listener(loaded, "piano", clips, 3.0, 8.0, 3, 0, top_p=0.99999)
        result["specs"][spec]["wall_s"] = round(time.perf_counter() - start, 1)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
