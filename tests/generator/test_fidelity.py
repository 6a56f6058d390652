"""The fidelity measure of reduced-precision modes (bench/fidelity.py), on the tiny checkpoint."""

from __future__ import annotations

import copy

import torch

from bench.fidelity import Fidelity, psnr, teacher_forced_fidelity
from generator.model.bart import DalleBart
from generator.model.dalle import DalleMini
from generator.model.vqgan import VQGanDetokenizer


def _perturbed(model: DalleBart, relative: float) -> DalleBart:
    """A copy whose decoder matrices are scaled by 1 + `relative`·normal noise, entry by entry."""
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for weight in other.decoder.parameters():
            if weight.dim() == 2:
                weight.mul_(1 + relative * torch.randn(weight.shape, generator=generator))
    return other


def _fidelity(model: DalleMini, other: DalleBart) -> Fidelity:
    text = torch.cat([model.tokenizer.encode_unconditional(), model.tokenizer.encode(["a fox in the snow"])])
    return teacher_forced_fidelity(
        model.bart,
        other,
        text,
        code_count=model.code_count,
        pad_token_id=model.tokenizer.pad_token_id,
        steps=48,
    )


def test_identical_models_are_at_distance_zero(tiny_model: DalleMini) -> None:
    same = _fidelity(tiny_model, copy.deepcopy(tiny_model.bart))
    assert (same.mean_tv, same.p99_tv, same.topk_differ) == (0.0, 0.0, 0.0)
    assert same.steps == 2 * 48


def test_a_larger_perturbation_moves_the_distributions_further(tiny_model: DalleMini) -> None:
    slight = _fidelity(tiny_model, _perturbed(tiny_model.bart, 0.01))
    deliberate = _fidelity(tiny_model, _perturbed(tiny_model.bart, 0.3))
    assert 0.0 < slight.mean_tv < deliberate.mean_tv <= 1.0
    assert slight.p99_tv < deliberate.p99_tv


def _brighter(vqgan: VQGanDetokenizer, shift: float) -> VQGanDetokenizer:
    other = copy.deepcopy(vqgan)
    with torch.no_grad():
        other.decoder.conv_out.bias.add_(shift)  # every pixel brighter (then clipped to [0, 1])
    return other


def test_psnr_is_infinite_for_the_same_vqgan_and_falls_as_pixels_move(tiny_model: DalleMini) -> None:
    codes = torch.randint(0, tiny_model.code_count, (2, tiny_model.config.image_length))
    vqgan = tiny_model.vqgan
    assert psnr(vqgan, vqgan, codes) == float("inf")
    assert 20 < psnr(vqgan, _brighter(vqgan, 0.1), codes) < psnr(vqgan, _brighter(vqgan, 0.01), codes) < 60
