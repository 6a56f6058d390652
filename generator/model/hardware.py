"""What a chip multiplies natively, the one probe behind every precision choice (decoder weights, VQGAN,
upscaler): a bfloat16 path is a speed-up only where the hardware has it."""

from __future__ import annotations

import torch


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 natively: a GPU that says so, or a CPU with AVX512-BF16 or AMX
    (oneDNN's bf16 GEMMs then run about twice fp32's speed; without them bf16 is emulated and slower, and
    on an AVX2-only CPU oneDNN refuses a bf16 linear outright)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False
