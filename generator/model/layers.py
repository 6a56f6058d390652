"""Building blocks shared by the DalleBart encoder and decoder.

Reference: dalle-mini src/dalle_mini/model/modeling.py (``FlaxBartAttention``, ``GLU``, ``norm``):
no linear biases; "normformer" layer norms, of which the pre-norms and the GLU norms have a bias but no
scale (``use_scale=force_ln_scale``, False in the published checkpoints); eps 1e-5; exact GELU.
Attribute names follow min-dalle's torch port so that flax → torch conversion is a rename table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# oneDNN's CPU linear (an internal op, used by inductor): absent from builds without oneDNN
_ONEDNN_LINEAR = (
    getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None
)


def linear_rows(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Rows `x` (S, in) times `weight` (out, in)ᵀ → (S, out), picking the fastest CPU kernel.

    Why: decoding multiplies a few rows by each weight matrix, where ``F.linear`` (MKL, ``x @ weightᵀ``)
    streams the weight at only ~8 GB/s. Measured on 2 AMD EPYC cores (d 1024 × ffn 2730, 16384 × 1024):
    - 1-2 rows (one image: its cond and uncond rows): MKL with the *weight* as the left operand,
      ``weight @ xᵀ``, streams ~30 GB/s (3.5× ``F.linear``);
    - more rows: oneDNN's matmul (the kernel behind inductor's CPU linear) is 1.4-2× ``F.linear``.
    The same dot products summed in another order (float rounding). Other devices and dtypes and batched
    (n, T, d) inputs take ``F.linear``.
    """
    if x.dim() != 2 or x.device.type != "cpu" or x.dtype != torch.float32:
        return F.linear(x, weight)
    if x.shape[0] <= 2 or _ONEDNN_LINEAR is None:
        # (out, S)ᵀ copied to (S, out) rows: a transposed view would reach attention as q/k/v whose last
        # axis has stride S, sending scaled_dot_product_attention to its slow math path (12 % of a step)
        return torch.mm(weight, x.t()).t().contiguous()
    return _ONEDNN_LINEAR(x, weight, None, "none", [], "")


def project(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A bias-free Linear `module` on `x` through `linear_rows`; other modules (the int8 mode's dynamic
    quantized Linear) run their own forward."""
    return linear_rows(x, module.weight) if type(module) is nn.Linear else module(x)


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
