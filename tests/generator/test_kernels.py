"""The CPU kernels of a decoding step's float32 rows: each computes the same product, and the decoder keeps
the fastest per step size, timed on its own weights (generator/model/kernels.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from generator.model import kernels
from generator.model.dalle import DalleMini
from generator.model.sampler import RowRequest, SamplingSettings


@pytest.mark.parametrize("rows", [1, *kernels.SIZES, 19])
@pytest.mark.parametrize("name", list(kernels.KERNELS))
def test_every_candidate_kernel_multiplies_the_rows_by_the_weight(name: str, rows: int) -> None:
    generator = torch.Generator().manual_seed(rows)
    weight = torch.randn(300, 200, generator=generator)
    x = torch.randn(rows, 200, generator=generator)
    product = kernels.KERNELS[name](x, weight)
    expected = (x.double() @ weight.double().t()).float()
    assert product.shape == (rows, 300) and product.is_contiguous()  # attention needs contiguous q, k, v
    torch.testing.assert_close(product, expected, rtol=1e-5, atol=1e-4)


needs_packing = pytest.mark.skipif(kernels.ONEDNN_PACK is None, reason="this torch has no oneDNN packing")


@needs_packing
@pytest.mark.parametrize("rows", [1, *kernels.SIZES, 19])
def test_the_packed_kernel_multiplies_the_rows_by_its_packed_weight(rows: int) -> None:
    generator = torch.Generator().manual_seed(rows)
    weight = torch.randn(300, 200, generator=generator)
    x = torch.randn(rows, 200, generator=generator)
    chosen = kernels.RowKernels((kernels.PACKED,) * len(kernels.SIZES))
    product = chosen(x, weight, kernels.pack(weight))
    assert product.shape == (rows, 300) and product.is_contiguous()
    torch.testing.assert_close(product, (x.double() @ weight.double().t()).float(), rtol=1e-5, atol=1e-4)


@needs_packing
def test_a_decoder_on_the_packed_kernel_draws_from_the_same_logits(
    tiny_checkpoints: tuple[Path, Path],
) -> None:
    """Every product of a step, lm_head's included, through packed copies: the logits of the default
    kernels, step after step."""
    models = {name: DalleMini.load(*tiny_checkpoints) for name in ("default", "packed")}
    decoder = models["packed"].bart.decoder
    decoder.row_kernels = kernels.RowKernels((kernels.PACKED,) * len(kernels.SIZES))
    for layer in decoder.decoder_layers:
        layer.step_weights = None
    decoder.lm_float32 = None
    decoder.prepare_step()
    assert decoder.lm_float32 is not None and decoder.lm_float32.packed is not None
    samplers = {name: model.new_sampler(capacity=2) for name, model in models.items()}
    for name, sampler in samplers.items():
        text = models[name].tokenizer.encode(["a cat wearing a hat", "sunset over a lake"])
        sampler.add_rows(text, [RowRequest(i, i, SamplingSettings(seed=i)) for i in range(2)])
    for _ in range(12):
        logits = {name: sampler.next_logits() for name, sampler in samplers.items()}
        torch.testing.assert_close(logits["packed"], logits["default"], rtol=1e-4, atol=1e-4)
        for sampler in samplers.values():
            sampler.step()
    assert samplers["packed"].positions() == samplers["default"].positions() == {0: 12, 1: 12}


def test_the_fastest_candidate_is_kept_for_each_step_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights past the caches (64 MB and more) are timed; a candidate 20 ms slower per matrix loses."""

    def slow(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return F.linear(x, weight)

    monkeypatch.setitem(kernels.KERNELS, "slow", slow)
    weights = [torch.randn(4096, 2304) for _ in range(2)]  # 75 MB of float32
    chosen = kernels.measure(weights)
    assert len(chosen.by_size) == len(kernels.SIZES)
    assert set(chosen.by_size) <= {*kernels.KERNELS, kernels.PACKED} - {"slow"}
    packed = kernels.pack(weights[0]) if chosen.packs else None
    for rows in kernels.SIZES:
        x = torch.randn(rows, 2304)
        torch.testing.assert_close(
            chosen(x, weights[0], packed), F.linear(x, weights[0]), rtol=1e-4, atol=1e-3
        )


@needs_packing
def test_the_packed_kernel_is_kept_where_the_others_are_slower(monkeypatch: pytest.MonkeyPatch) -> None:
    def slowed(kernel: kernels.Kernel) -> kernels.Kernel:
        def slow(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            time.sleep(0.02)
            return kernel(x, weight)

        return slow

    for name, kernel in list(kernels.KERNELS.items()):
        monkeypatch.setitem(kernels.KERNELS, name, slowed(kernel))
    chosen = kernels.measure([torch.randn(4096, 2304) for _ in range(2)])
    assert chosen.by_size == (kernels.PACKED,) * len(kernels.SIZES) and chosen.packs
    assert str(chosen) == "oneDNN packed at every size"


def test_a_step_takes_the_kernel_timed_at_the_first_size_that_holds_it() -> None:
    chosen = kernels.RowKernels(("F.linear", "oneDNN", "oneDNN", "weight @ xᵀ"))
    left = "weight @ xᵀ"
    assert [chosen.kernel_for(rows) for rows in (1, 2, 3, 4, 5, 8, 9, 16, 40)] == [
        "F.linear", "F.linear", "oneDNN", "oneDNN", "oneDNN", "oneDNN", left, left, left
    ]  # fmt: skip
    assert str(chosen) == "F.linear up to 2 rows, oneDNN up to 8 rows, weight @ xᵀ beyond"
    assert str(kernels.RowKernels(("F.linear",) * 4)) == "F.linear at every size"


def test_weights_that_fit_the_caches_keep_the_default_kernels() -> None:
    assert kernels.measure([torch.randn(512, 512) for _ in range(4)]) == kernels.DEFAULT
    assert kernels.measure([torch.randn(4096, 4096).to(torch.bfloat16)]) == kernels.DEFAULT  # float32 only


def test_loading_a_model_logs_its_step_kernels(
    tiny_checkpoints: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="generator.model.dalle"):
        model = DalleMini.load(*tiny_checkpoints)
    assert model.bart.decoder.row_kernels == kernels.DEFAULT  # a tiny model: nothing worth timing
    assert f"(float32 decoder weights; step kernels: {kernels.DEFAULT})" in caplog.text
