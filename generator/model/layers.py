"""Building blocks shared by the DalleBart encoder and decoder.

Reference: dalle-mini src/dalle_mini/model/modeling.py (``FlaxBartAttention``, ``GLU``, ``norm``):
no linear biases; "normformer" layer norms, of which the pre-norms and the GLU norms have a bias but no
scale (``use_scale=force_ln_scale``, False in the published checkpoints); eps 1e-5; exact GELU.
Attribute names follow min-dalle's torch port so that flax → torch conversion is a rename table.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from generator.model import kernels
from generator.model.hardware import native_bfloat16
from generator.model.kernels import ONEDNN_LINEAR, ONEDNN_PACK, RowKernels

# Without native bfloat16 (an AVX2-only CPU) oneDNN refuses a bf16 linear ("could not create a primitive
# descriptor") and torch emulates bf16 products, slower than float32
NATIVE_BF16 = native_bfloat16(torch.device("cpu"))


def project(module: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """A bias-free Linear `module` on `x` through the default row kernels (see generator/model/kernels.py)."""
    return kernels.DEFAULT(x, module.weight)


# Decoder weights for the CPU's fast decoding (see generator/model/precision.py): "float32" is the exact
# path (`Float32Rows`); the others keep activations, layer norms and residuals in float32 and reduce only the
# weights a step streams.
WeightFormat = Literal["float32", "bfloat16", "int8"]
INT8_ROWS = 4  # _weight_int8pack_mm works in blocks of 4 rows: more rows cost a whole pass each


class Float32Rows:
    """A float32 weight (out, in) for rows (S, in) → (S, out) through `row_kernels` (exact), with the copy
    packed for oneDNN that they need where they take the packed kernel."""

    def __init__(self, weight: torch.Tensor, row_kernels: RowKernels) -> None:
        self.weight = weight
        self.row_kernels = row_kernels
        self.packed = kernels.pack(weight) if row_kernels.packs else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.row_kernels(x, self.weight, self.packed)


class RowsWeight:
    """One weight matrix (out, in) in a reduced format, for rows `x` (S, in) float32 → (S, out) float32.

    Why hand-made: a decoding step multiplies a few rows by each matrix, so its time is the time to stream
    the weights. Measured on 2 AMD EPYC cores over the 73 matrices of a dalle-mini step (bytes ÷ time):
    - bfloat16 weights through oneDNN's linear: 14 ms for 2 rows (fp32 at its best, ``weight @ xᵀ``, 22 ms),
      19 ms for 18 rows (fp32 oneDNN 34 ms);
    - int8 weights with one scale per output row through ``torch._weight_int8pack_mm`` (bf16 rows): 6 ms
      for up to 4 rows, but it re-reads the weights per block of 4 rows (12 ms for 8, 22 ms for 16): bigger
      steps take a bfloat16 copy of the same rows (int8 + bf16 together still read less than fp32).
    On 2 Intel Sapphire Rapids cores (AMX) the bf16 copy is prepacked for oneDNN: 20 ms for 2 rows, 25 ms for
    18 (unpacked 39 and 42; float32 at its best 33-40); the int8 kernel 20 ms for 2 rows, 90 for 18.
    On a CPU without native bfloat16 (AVX2 only, `NATIVE_BF16` false) int8 weights take the int8 kernel at
    every size, which still beats float32 there up to 18 rows (2 AMD EPYC AVX2 cores, 5472 × 1024: 0.32 vs
    0.82 ms for 2 rows, 2.8 vs 3.1 ms for 18), and bfloat16 weights fall back to ``F.linear``.
    torchao would wrap the same kernels but is not a dependency.
    """

    def __init__(self, weight: torch.Tensor, weight_format: WeightFormat) -> None:
        if weight_format == "float32":
            raise ValueError("float32 weights take Float32Rows")
        weight = weight.detach().float()
        self.out_count, self.in_count = weight.shape
        self.bf16: torch.Tensor | None = None  # the bigger steps' copy (int8 weights on a bf16 CPU)
        if weight_format == "bfloat16" or NATIVE_BF16:
            self.bf16 = weight.to(torch.bfloat16).contiguous()
            # unpacked, oneDNN reorders a bf16 weight on every call and streams it at about half the rate
            # (2 Sapphire Rapids cores: 19 vs 10 GB/s)
            if NATIVE_BF16 and ONEDNN_PACK is not None:
                self.bf16 = kernels.pack(self.bf16, kernels.SIZES[0])  # laid out for 1-image steps
        self.int8: tuple[torch.Tensor, torch.Tensor] | None = None
        if weight_format == "int8":
            pad = -self.in_count % 16  # the int8 kernel's K blocks: dalle-mini's ffn 2730 → 2736
            padded = F.pad(weight, (0, pad))
            # the kernel takes bf16 scales: quantize with the rounded scale, so rounding it adds no error
            scales = (padded.abs().amax(dim=1).clamp_min(1e-12) / 127.0).to(torch.bfloat16)
            quantized = torch.round(padded / scales.float()[:, None]).clamp_(-127, 127).to(torch.int8)
            self.int8 = (quantized.contiguous(), scales)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.to(torch.bfloat16)
        if self.int8 is not None and (x.shape[0] <= INT8_ROWS or self.bf16 is None):
            quantized, scales = self.int8
            if quantized.shape[1] != self.in_count:
                rows = F.pad(rows, (0, quantized.shape[1] - self.in_count))
            return torch._weight_int8pack_mm(rows, quantized, scales).float()
        assert self.bf16 is not None
        if ONEDNN_LINEAR is not None and NATIVE_BF16:
            return kernels.onednn_linear(rows, self.bf16).float()
        return F.linear(rows, self.bf16).float()


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with a bias and, if `is_scaled`, a scale (``weight``)."""

    def __init__(self, embed_count: int, *, is_scaled: bool, eps: float = 1e-5) -> None:
        super().__init__()
        self.embed_count = embed_count
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(embed_count)) if is_scaled else None
        self.bias = nn.Parameter(torch.zeros(embed_count))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.embed_count,), self.weight, self.bias, self.eps)


class Attention(nn.Module):
    """The four bias-free projections of one multi-head attention; the attention itself is in the layers."""

    def __init__(self, embed_count: int, head_count: int) -> None:
        super().__init__()
        self.head_count = head_count
        self.head_dim = embed_count // head_count
        self.q_proj = nn.Linear(embed_count, embed_count, bias=False)
        self.k_proj = nn.Linear(embed_count, embed_count, bias=False)
        self.v_proj = nn.Linear(embed_count, embed_count, bias=False)
        self.out_proj = nn.Linear(embed_count, embed_count, bias=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., T, d) → (..., h, T, hd)"""
        return x.unflatten(-1, (self.head_count, self.head_dim)).transpose(-3, -2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., h, T, hd) → (..., T, d)"""
        return x.transpose(-3, -2).flatten(-2)


class GLU(nn.Module):
    """``ln0 → (gelu(fc0 x) * fc1 x) → ln1 → fc2`` ("GLU Variants Improve Transformer", GEGLU)."""

    def __init__(self, embed_count: int, ffn_count: int, *, is_scaled: bool, eps: float) -> None:
        super().__init__()
        self.ln0 = LayerNorm(embed_count, is_scaled=is_scaled, eps=eps)
        self.fc0 = nn.Linear(embed_count, ffn_count, bias=False)
        self.fc1 = nn.Linear(embed_count, ffn_count, bias=False)
        self.ln1 = LayerNorm(ffn_count, is_scaled=is_scaled, eps=eps)
        self.fc2 = nn.Linear(ffn_count, embed_count, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.ln0(x)
        z = F.gelu(project(self.fc0, z)) * project(self.fc1, z)  # exact (erf) GELU, as flax's nn.gelu
        return project(self.fc2, self.ln1(z))


Rows = Float32Rows | RowsWeight
