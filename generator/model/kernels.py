"""Which CPU kernel multiplies a decoding step's few float32 rows by its weight matrices fastest.

A step multiplies S rows (2 per image: its conditioned and unconditioned sequences) by each of ~0.76 GB of
weights, so its time is the time to stream them, and which kernel streams best differs from CPU to CPU by
2-3.5× (dalle-mini's 73 step matrices, 2 rows):
- 2 AMD EPYC cores (AVX-512): MKL with the *weight* as the left operand, ``weight @ xᵀ``, ~30 GB/s;
  ``F.linear`` (MKL's ``x @ weightᵀ``) ~8 GB/s;
- 2 Intel Sapphire Rapids cores (AMX): ``F.linear`` ~20 GB/s, at the matrix-vector stream rate;
  ``weight @ xᵀ`` ~11 GB/s;
- more rows: on the EPYC oneDNN's matmul (inductor's CPU linear), 1.4-2× ``F.linear``; on the Sapphire
  Rapids oneDNN up to 4 or 8 rows, then ``weight @ xᵀ`` (16 rows: 63-83 ms a pass, oneDNN 73-92);
- 2 AMD EPYC cores with AVX2 only: ``weight @ xᵀ`` up to 4 rows (59 ms a pass at 2, gemv 44-50), then
  oneDNN with the weight as its source, ``oneDNN weight @ xᵀ`` (8 rows 61 ms, oneDNN 82; 16 rows 64-80,
  oneDNN 109); or oneDNN on a copy of each weight *prepacked* in its own blocked layout (``oneDNN
  packed``): as fast up to 16 rows, faster beyond (18 rows 144-153 ms a pass, ``oneDNN weight @ xᵀ``
  189-191), and it writes its rows as attention reads them, with no transposed copy (`PACKED_MARGIN`).
So the decoder times the candidates on its own weights when it first prepares a step (`measure`, 8-11 s
on 2 shared cores for dalle-mini) and keeps the fastest per step size. Where the packed kernel is kept
the step weights are held twice (the modules' float32 weights and the packed copies: +0.77 GB for
dalle-mini). The kernels sum the same products in other orders (float rounding only).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# oneDNN's CPU linear (an internal op, used by inductor): absent from builds without oneDNN
ONEDNN_LINEAR = (
    getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
)
# the step sizes (rows) timed; a step of S rows takes the kernel timed at the first size ≥ S (the last beyond)
SIZES = (2, 4, 8, 16)  # 1, 2, 4 and 8 images
# weights that fit the caches stream fast through any kernel; tiny test models keep the defaults (and so
# the same rounding from one load to the next)
MEASURED_BYTES = 64 * 2**20


def _weight_left(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # (out, S)ᵀ copied to (S, out) rows: a transposed view would reach attention as q/k/v whose last axis
    # has stride S, sending scaled_dot_product_attention to its slow math path (12 % of a step)
    return torch.mm(weight, x.t()).t().contiguous()


def onednn_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x` times `weight`ᵀ through oneDNN (a plain or a prepacked weight; any dtype oneDNN takes)."""
    assert ONEDNN_LINEAR is not None
    return ONEDNN_LINEAR(x, weight, None, "none", [], "")


def _onednn_weight_left(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # the weight as oneDNN's source and the rows as its (tiny) weight: the matrix is streamed as it lies,
    # only the S rows are reordered; contiguous rows for attention, as in `_weight_left`
    return onednn_linear(weight, x).t().contiguous()


KERNELS: dict[str, Kernel] = {"weight @ xᵀ": _weight_left, "F.linear": F.linear}
if ONEDNN_LINEAR is not None:
    KERNELS["oneDNN"] = onednn_linear
    KERNELS["oneDNN weight @ xᵀ"] = _onednn_weight_left

# oneDNN's weight prepacking (what inductor's frozen CPU linears run on): the one candidate that multiplies
# a copy of the weight rather than the weight, made once (`pack`) and handed to `RowKernels` by its caller
ONEDNN_PACK = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None) if ONEDNN_LINEAR else None
PACKED = "oneDNN packed"
# The packed kernel writes its (S, out) rows as attention reads them; the others copy a transposed product,
# which inside a step (its caches emptied by the weights) costs more than in `measure`'s passes. So it is
# kept where it times within this margin of the fastest: on 2 AVX2 EPYC cores it ties there up to 16 rows,
# and whole steps run ×1.07-1.10 faster with it at 1 image, ×1.22 at 9 (one process, steps interleaved).
PACKED_MARGIN = 0.10


def pack(weight: torch.Tensor, rows: int = SIZES[-1]) -> torch.Tensor:
    """`weight` (out, in) in oneDNN's blocked layout for `onednn_linear` (an opaque tensor, same bytes),
    laid out for products of about `rows` rows (any other count works)."""
    assert ONEDNN_PACK is not None
    return ONEDNN_PACK(weight, rows)


@dataclass(frozen=True)
class RowKernels:
    """The kernel (a name in `KERNELS`) for steps of up to each of `SIZES` rows; the defaults are the
    EPYC's choice."""

    by_size: tuple[str, ...] = ("weight @ xᵀ", *["oneDNN" if ONEDNN_LINEAR is not None else "F.linear"] * 3)

    def __call__(
        self, x: torch.Tensor, weight: torch.Tensor, packed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Rows `x` (S, in) times `weight` (out, in)ᵀ → (S, out); `packed` is `pack(weight)`, needed where
        `packs`. Other devices and dtypes and batched (n, T, d) inputs take ``F.linear``."""
        if x.dim() != 2 or x.device.type != "cpu" or x.dtype != torch.float32:
            return F.linear(x, weight)
        name = self.kernel_for(x.shape[0])
        if name == PACKED:
            assert packed is not None, "a packed kernel needs the packed weight: Float32Rows makes it"
            return onednn_linear(x, packed)
        return KERNELS[name](x, weight)

    @property
    def packs(self) -> bool:
        """Whether some step size takes the packed kernel (its callers then keep `pack(weight)`)."""
        return PACKED in self.by_size

    def kernel_for(self, rows: int) -> str:
        """The kernel's name for a step of `rows` rows."""
        return next(
            (name for size, name in zip(SIZES, self.by_size, strict=True) if rows <= size), self.by_size[-1]
        )

    def __str__(self) -> str:
        """Each run of one kernel told once: "F.linear up to 2 rows, oneDNN up to 8 rows, … beyond"."""
        pairs = itertools.groupby(zip(self.by_size, SIZES, strict=True), key=lambda pair: pair[0])
        runs = [(name, max(size for _, size in run)) for name, run in pairs]
        told = [f"{name} up to {size} rows" for name, size in runs[:-1]]
        return ", ".join([*told, f"{runs[-1][0]} {'beyond' if told else 'at every size'}"])


DEFAULT = RowKernels()


def measure(weights: Sequence[torch.Tensor], rounds: int = 3) -> RowKernels:
    """The fastest kernel at each step size for `weights` (the float32 CPU matrices a step reads): every
    candidate times one pass over all of them, the candidates taking turns, best of `rounds` (a busy
    machine slows them alike)."""
    if not weights or any(w.device.type != "cpu" or w.dtype != torch.float32 for w in weights):
        return DEFAULT
    if sum(w.numel() * w.element_size() for w in weights) < MEASURED_BYTES:
        return DEFAULT
    chosen = []
    with torch.inference_mode():
        # (a copy of the weights while timing: the packed kernel multiplies its own layout)
        packed = {id(w): pack(w) for w in weights} if ONEDNN_PACK is not None else {}
        candidates: dict[str, Kernel] = dict(KERNELS)
        if packed:
            candidates[PACKED] = lambda x, weight: onednn_linear(x, packed[id(weight)])
        for rows in SIZES:
            inputs = {w.shape[1]: torch.randn(rows, w.shape[1]) for w in weights}
            best = dict.fromkeys(candidates, math.inf)
            for _ in range(rounds):
                for name, kernel in candidates.items():
                    started = time.perf_counter()
                    for weight in weights:
                        kernel(inputs[weight.shape[1]], weight)
                    best[name] = min(best[name], time.perf_counter() - started)
            fastest = min((name for name in best if name != PACKED), key=best.__getitem__)
            is_packed_near = best.get(PACKED, math.inf) <= (1 + PACKED_MARGIN) * best[fastest]
            chosen.append(PACKED if is_packed_near else fastest)
    return RowKernels(tuple(chosen))
