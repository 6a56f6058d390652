"""Opt-in int8 weights for CPU decoding.

Decoding one token is a matrix-vector product per weight matrix, so on a CPU its time is the time to stream
the decoder's weights from memory (≈ 0.77 GB per step in fp32 for dalle-mini). Dynamic int8 quantization
of the decoder layers' Linear weights (per-row scales; activations quantized on the fly) streams a quarter
of that. The encoder (run once per prompt) and lm_head (read only over the real codes, kept fp32 so the
logits stay as exact as possible) are left alone. Tokens differ from fp32: bench/model.py --int8 measures
how often the teacher-forced top-1 code agrees.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from generator.model.bart import DalleBart


def quantize_decoder_int8(model: DalleBart) -> DalleBart:
    """Replace the decoder layers' Linear modules by dynamically quantized int8 ones, in place (CPU, fp32)."""
    if next(model.parameters()).device.type != "cpu" or next(model.parameters()).dtype != torch.float32:
        raise ValueError("int8 decoding is a CPU float32 mode")
    with warnings.catch_warnings():
        # torch.ao.quantization and quantized tensors are deprecated in favour of torchao (not a dependency)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(model.decoder.layers, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model
