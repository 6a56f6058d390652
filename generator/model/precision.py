"""The CPU's fast decoding: reduced-precision decoder weights and a bfloat16 VQGAN.

A decoding step multiplies a few rows by every decoder weight matrix, so on a CPU its time is the time to
stream the weights (≈ 0.76 GB per step in float32 for dalle-mini); the VQGAN is a stack of 3×3
convolutions, compute-bound. Measured on 2 AMD EPYC cores with AVX512-BF16 and VNNI (bench/model.py):
- "int8" decoder weights (one scale per output row, weight-only: activations, layer norms and residuals
  stay float32) read a quarter of the bytes through ``torch._weight_int8pack_mm`` for steps of up to 4
  sequences (≤ 2 images) and a bfloat16 copy for bigger steps; "bfloat16" weights read half;
- a bfloat16 VQGAN runs oneDNN's bf16 convolutions, about twice the float32 rate.
How close the draws stay to float32 is measured by bench/fidelity.py (total-variation distance of the
distributions the sampler draws from, teacher-forced; PSNR of the pictures).
"""

from __future__ import annotations

from typing import Literal

import torch

from generator.model.bart import DalleBart
from generator.model.hardware import native_bfloat16
from generator.model.layers import WeightFormat

VqganDtype = Literal["float32", "bfloat16"]


def fast_cpu_supported() -> bool:
    """Whether this CPU runs bfloat16 (and int8 weight-only) products natively: AVX512-BF16 or AMX."""
    return hasattr(torch, "_weight_int8pack_mm") and native_bfloat16(torch.device("cpu"))


def reduce_decoder_weights(model: DalleBart, weight_format: WeightFormat) -> DalleBart:
    """The decoder's step weights in `weight_format`, in place (a CPU float32 model)."""
    if weight_format == "float32":
        return model
    parameter = next(model.parameters())
    if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        raise ValueError(f"{weight_format} decoder weights are a CPU mode of a float32 model")
    model.decoder.reduce_weights(weight_format)
    return model
