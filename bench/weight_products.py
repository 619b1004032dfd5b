"""The frame tier's products with cold weights: does a smaller weight type make them faster here?

Once per frame the audio sampler multiplies the takes' (B, 384) rows by the frame tier's matrices,
5.25 MiB of float32 in all, more than a core's 2 MB L2 cache, so each matrix arrives from L3.
This times one (B, 384) x (384, 1,152) product (the shape of the frame GRU's input and hidden
weights) with the matrix cold: four such matrices are used in turn, as the sampler uses its
four. Kinds: float32 (what the sampler does), bfloat16 and float16 (activations and weights in
that type), float32 through NumPy (``x.numpy() @ w``), float32 split by gate ((3, 384, 384), one batched
call: how the sampler held the frame GRU's weights before),
and torch's int8 weight-only kernel (``torch.ops.aten._weight_int8pack_mm``, per-row
scales, as the shipped int8 files store matrices). Reported: the mean time of one product, the
float32 weights' bytes over it (the L3 bandwidth the product reaches), and each kind's time over
float32's, all in one process on one thread.
Run: OMP_NUM_THREADS=1 python bench/weight_products.py [--out bench/results/weight_products.json]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json
from pathlib import Path

import torch

from genseq.store import quantize_int8

from common import ROOT, make_parser, timed


def mean_us(product, calls: int) -> float:
    """Mean microseconds of ``product(k)`` over ``calls`` calls, cycling through the four matrices."""
    for k in range(4):
        product(k)  # warm up the kernels (the matrices go cold again as the cycle moves on)

    def cycle():
        for i in range(calls):
            product(i % 4)
    return timed(cycle)[0] / calls * 1e6


def main():
    parser = make_parser(__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "bench/results/weight_products.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    weights = [torch.randn(1152, 384) * 0.05 for _ in range(4)]  # (out, in), as nn.Linear holds them
    kinds = {"float32": [w.t().contiguous() for w in weights],
             "bfloat16": [w.t().contiguous().bfloat16() for w in weights],
             "float16": [w.t().contiguous().half() for w in weights],
             "int8 weight-only": [quantize_int8(w) for w in weights]}
    flat = [w.numpy() for w in kinds["float32"]]
    gate_major = [w.reshape(384, 3, 384).permute(1, 0, 2).contiguous() for w in kinds["float32"]]
    products = {
        "float32": lambda x, k: x @ kinds["float32"][k],
        # what the sampler does for one take: NumPy's vector-matrix product on the same memory
        "float32 NumPy": lambda x, k: x.numpy() @ flat[k],
        # the same product split by gate, (3, 384, 384): three products in one batched call
        "float32 gate-major": lambda x, k: torch.matmul(x, gate_major[k]),
        "bfloat16": lambda x, k: (x.bfloat16() @ kinds["bfloat16"][k]).float(),
        "float16": lambda x, k: (x.half() @ kinds["float16"][k]).float(),
        "int8 weight-only": lambda x, k: torch.ops.aten._weight_int8pack_mm(x, *kinds["int8 weight-only"][k]),
    }
    megabytes = weights[0].numel() * 4 / 1e6
    result = {"matrix": [384, 1152], "float32_mb": round(megabytes, 2), "calls": args.calls, "batches": {}}
    for batch in (1, 4, 8):
        x = torch.randn(batch, 384)
        cases = {}
        for name, product in products.items():
            calls = args.calls if name != "int8 weight-only" else max(40, args.calls // 20)  # a slow kernel
            cases[name] = {"us": round(mean_us(lambda k, p=product, x=x: p(x, k), calls), 1)}
        for case in cases.values():
            case["float32_gb_per_s"] = round(megabytes / case["us"] * 1e3, 1)
            case["vs_float32"] = round(case["us"] / cases["float32"]["us"], 2)
        result["batches"][batch] = cases
        print(f"  batch {batch}: " + ", ".join(f"{n} {c['us']} us (x{c['vs_float32']})" for n, c in cases.items()),
              flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
