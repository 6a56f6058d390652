"""The small ops of a decoding step, back to back (warm) beside right after a weight product (cold).

    .venv/bin/python -m bench.cold_ops [--images 1] [--repeats 200]

A float32 step interleaves 73 weight products with its small ops (layer norms, attention, copies). Each
product streams megabytes of weights through the caches, so the op after it finds its code, the
dispatcher's state and its inputs evicted. This prints what that costs at a step's shapes (dalle-mini,
`--images` images at position 124): each op's median time repeated back to back, and right after a product
of the glu_in matrix (5460 × 1024, 22 MB). The differences, times each op's count in a step, bound the
time this costs a step beyond the weight-streaming floor (`bench.model` prints a step's whole "rest").
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from generator.model.kernels import DEFAULT

D, HEADS, HEAD_DIM, TEXT, POSITION = 1024, 16, 64, 64, 124


def median_us(op: Callable[[], object], before: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        before()
        started = time.perf_counter()
        op()
        times.append(time.perf_counter() - started)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rows = 2 * args.images  # conditioned and unconditioned sequences
    x = torch.randn(rows, D)
    keys, values = (torch.randn(rows, HEADS, 256, HEAD_DIM)[:, :, : POSITION + 1] for _ in range(2))
    query, self_mask = (
        torch.randn(rows, HEADS, 1, HEAD_DIM),
        torch.ones(rows, 1, 1, POSITION + 1, dtype=torch.bool),
    )
    cross_keys, cross_values = (torch.randn(1, HEADS, 2 * TEXT, HEAD_DIM) for _ in range(2))
    cross_query, cross_mask = (
        torch.randn(1, HEADS, rows, HEAD_DIM),
        torch.ones(1, 1, rows, 2 * TEXT, dtype=torch.bool),
    )
    weight = torch.randn(5460, D)
    ops: dict[str, tuple[Callable[[], object], int]] = {  # name → (op, calls per step)
        "layer norm": (lambda: F.layer_norm(x, (D,)), 74),
        "self-attention": (
            lambda: F.scaled_dot_product_attention(query, keys, values, attn_mask=self_mask),
            12,
        ),
        "cross-attention": (
            lambda: F.scaled_dot_product_attention(
                cross_query, cross_keys, cross_values, attn_mask=cross_mask
            ),
            12,
        ),
        "add": (lambda: x + x, 37),
    }

    def product() -> None:
        DEFAULT(x, weight)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.images} image(s) ({rows} rows)"
    )
    print(f"the product before each cold call: {median_us(product, lambda: None, 20):.0f} µs")
    extra_ms = 0.0
    for name, (op, count) in ops.items():
        warm = median_us(op, lambda: None, args.repeats)
        cold = median_us(op, product, args.repeats)
        extra_ms += (cold - warm) * count / 1000
        print(f"{name:16s} warm {warm:6.0f} µs   after a product {cold:6.0f} µs   "
              f"×{cold / warm:4.1f}   {count} a step")  # fmt: skip
    print(f"at most {extra_ms:.1f} ms a step more than back to back (if each call ran right after a product)")


if __name__ == "__main__":
    main()
