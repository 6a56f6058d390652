"""The step-wise sampler: batching, per-row settings, determinism, super-conditioning, variations, drops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from generator.model import layers
from generator.model.dalle import DalleMini
from generator.model.grid import grid_shape, make_grid, png_bytes
from generator.model.sampler import RowRequest, SamplingSettings, generate
from jobs.options import JobOptions

PROMPTS = ["a cat wearing a hat", "sunset over a lake", "an avocado armchair"]


def _alone(
    model: DalleMini, prompt: str, settings: SamplingSettings, prefix: torch.Tensor | None = None
) -> torch.Tensor:
    sampler = model.new_sampler(capacity=1)
    return generate(sampler, model.tokenizer.encode([prompt]), [RowRequest("x", 0, settings, prefix)])["x"]


def test_many_prompts_times_images_in_one_batch_with_per_row_settings(tiny_model: DalleMini) -> None:
    settings = [
        SamplingSettings(seed=1),
        SamplingSettings(seed=2, top_k=5, temperature=0.7),
        SamplingSettings(seed=3, top_p=0.5, guidance_scale=3.0),
        SamplingSettings(seed=4, top_k=None, top_p=0.9),
    ]
    rows = [RowRequest((p, i), p, s) for p in range(len(PROMPTS)) for i, s in enumerate(settings)]
    sampler = tiny_model.new_sampler(capacity=len(rows))
    together = generate(sampler, tiny_model.tokenizer.encode(PROMPTS), rows)
    assert sampler.active_count == 0 and len(together) == 12
    for (p, i), tokens in together.items():
        assert tokens.shape == (256,) and tokens.dtype == torch.long
        assert int(tokens.max()) < tiny_model.code_count  # never the start token or padding rows
        if p == i % len(PROMPTS):  # every settings variant once, each prompt at least once
            # a row's tokens depend only on its prompt, seed and settings: same as drawn alone
            assert torch.equal(tokens, _alone(tiny_model, PROMPTS[p], settings[i])), (p, i)
    assert not torch.equal(together[(0, 0)], together[(1, 0)])


def test_rows_joining_mid_run_and_capacity_queueing_do_not_change_tokens(tiny_model: DalleMini) -> None:
    text = tiny_model.tokenizer.encode(PROMPTS)
    sampler = tiny_model.new_sampler(capacity=3)
    sampler.add_rows(text, [RowRequest("early", 0, SamplingSettings(seed=5))])
    results = {}
    for step in range(300):
        if step == 37:  # a job claimed while another is running joins at the next step
            sampler.add_rows(
                text,
                [
                    RowRequest("late", 1, SamplingSettings(seed=6)),
                    RowRequest("late2", 0, SamplingSettings(seed=7, top_k=3)),
                ],
            )
            assert sampler.positions() == {"early": 37, "late": 0, "late2": 0}
        results.update({row.key: row.tokens for row in sampler.step()})
    assert torch.equal(results["early"], _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=5)))
    assert torch.equal(results["late"], _alone(tiny_model, PROMPTS[1], SamplingSettings(seed=6)))
    assert torch.equal(results["late2"], _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=7, top_k=3)))


def test_dropping_rows_mid_generation(tiny_model: DalleMini) -> None:
    text = tiny_model.tokenizer.encode(PROMPTS)
    sampler = tiny_model.new_sampler(capacity=4)
    sampler.add_rows(text, [RowRequest(k, k % 3, SamplingSettings(seed=k)) for k in range(4)])
    for _ in range(10):
        assert sampler.step() == []
    sampler.drop_rows([0, 2, "unknown"])  # cancelled jobs leave at the next step
    assert set(sampler.positions()) == {1, 3} and sampler.free_count == 2
    finished = {}
    while sampler.active_count:
        finished.update({row.key: row.tokens for row in sampler.step()})
    assert set(finished) == {1, 3}
    for k in (1, 3):
        assert torch.equal(finished[k], _alone(tiny_model, PROMPTS[k % 3], SamplingSettings(seed=k)))


def test_seed_determinism_and_seed_sensitivity(tiny_model: DalleMini) -> None:
    a = _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=11))
    assert torch.equal(a, _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=11)))
    assert not torch.equal(a, _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=12)))


def test_top_k_1_is_greedy_whatever_the_seed(tiny_model: DalleMini) -> None:
    greedy = [_alone(tiny_model, PROMPTS[1], SamplingSettings(seed=s, top_k=1)) for s in (1, 2)]
    assert torch.equal(greedy[0], greedy[1])
    tiny_p = [_alone(tiny_model, PROMPTS[1], SamplingSettings(seed=s, top_p=1e-6)) for s in (1, 2)]
    assert torch.equal(tiny_p[0], greedy[0])  # top-p that keeps one code is greedy too


def test_super_conditioning_mixes_the_two_logits(tiny_model: DalleMini) -> None:
    text = tiny_model.tokenizer.encode([PROMPTS[2]])
    sampler = tiny_model.new_sampler(capacity=3)
    sampler.add_rows(
        text, [RowRequest(g, 0, SamplingSettings(seed=0, guidance_scale=g)) for g in (0.0, 1.0, 4.0)]
    )
    uncond, cond, guided = sampler.next_logits()
    assert guided.shape == (tiny_model.code_count,)  # only the real codes: no start-token column
    torch.testing.assert_close(guided, uncond + 4.0 * (cond - uncond), atol=1e-5, rtol=0)
    assert not torch.allclose(cond, uncond)


def test_forced_prefix_variation_keeps_the_first_rows(tiny_model: DalleMini) -> None:
    original = _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=21))
    kept = original[: 16 * 5]  # first 5 rows of the 16 × 16 grid
    variation = _alone(tiny_model, PROMPTS[0], SamplingSettings(seed=22), prefix=kept)
    assert torch.equal(variation[:80], kept)
    assert not torch.equal(variation[80:], original[80:])
    # forcing the original's own prefix with its own seed reproduces it exactly
    assert torch.equal(_alone(tiny_model, PROMPTS[0], SamplingSettings(seed=21), prefix=kept), original)


def test_bfloat16_sampling_runs(tiny_checkpoints: tuple[Path, Path]) -> None:
    model = DalleMini.load(*tiny_checkpoints, dtype="bfloat16")
    tokens = model.tokens(["a cat"], JobOptions(images=2, seed=1))[0]
    assert tokens.shape == (2, 256) and int(tokens.max()) < model.code_count


def test_render_tokens_decode_and_grid(tiny_model: DalleMini) -> None:
    steps = []
    tokens = tiny_model.tokens(
        PROMPTS[:2], JobOptions(images=2, seed=3), progress=lambda d, t: steps.append(t)
    )
    assert [t.shape for t in tokens] == [(2, 256), (2, 256)] and len(steps) == 256
    more = tiny_model.tokens(PROMPTS[:1], JobOptions(images=3, seed=3))[0]
    assert torch.equal(more[:2], tokens[0])  # image i uses seed + i: more images keep the first ones
    images = tiny_model.decode(tokens[0])
    size = tiny_model.vqgan.config.resolution
    assert [im.size for im in images] == [(size, size)] * 2 and images[0].mode == "RGB"
    grid = make_grid(images * 2 + images[:1])  # 5 images → 3 × 2
    assert grid_shape(5) == (3, 2) and grid.size == (3 * size + 4 * 4, 2 * size + 3 * 4)
    assert png_bytes(grid)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("count", "shape"), [(1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (7, (3, 3)), (9, (3, 3))]
)
def test_grid_shapes(count: int, shape: tuple[int, int]) -> None:
    assert grid_shape(count) == shape
    with pytest.raises(ValueError):
        grid_shape(10)


def test_cli_renders_a_grid(tiny_checkpoints: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "generator",
            "render",
            "a cat",
            "--images",
            "4",
            "--seed",
            "7",
            "--out",
            str(out),
            "--model",
            str(tiny_checkpoints[0]),
            "--vqgan",
            str(tiny_checkpoints[1]),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    with Image.open(out) as grid:
        assert grid.size == (2 * 32 + 3 * 4, 2 * 32 + 3 * 4)
    bad = subprocess.run(
        [sys.executable, "-m", "generator", "render", "x", "--model", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert bad.returncode == 1 and "does not exist" in bad.stderr


@pytest.mark.parametrize("weights", ["bfloat16", "int8"])
def test_reduced_decoder_weights_draw_valid_codes(tiny_checkpoints: tuple[Path, Path], weights: str) -> None:
    reference = DalleMini.load(*tiny_checkpoints)
    model = DalleMini.load(*tiny_checkpoints, decoder_weights=weights)  # type: ignore[arg-type]
    assert model.bart.decoder.weight_format == weights
    for images in (1, 3):  # int8: 2 sequences take the int8 kernel, 6 the bfloat16 copy
        options = JobOptions(images=images, seed=1, top_k=1)
        expected = reference.tokens(["a cat"], options)[0]
        tokens = model.tokens(["a cat"], options)[0]
        assert tokens.shape == (images, 256) and int(tokens.max()) < model.code_count
        assert torch.equal(tokens[:, :4], expected[:, :4])  # greedy: the first codes agree


def test_int8_weights_without_native_bfloat16_take_the_int8_kernel_at_every_size(
    tiny_checkpoints: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An AVX2-only CPU: oneDNN refuses a bfloat16 linear there (and torch's emulation is slower than
    float32), so int8 weights keep no bfloat16 copy and 6 sequences draw through the int8 kernel too."""
    monkeypatch.setattr(layers, "NATIVE_BF16", False)
    reference = DalleMini.load(*tiny_checkpoints)
    model = DalleMini.load(*tiny_checkpoints, decoder_weights="int8")
    weights = [
        w
        for layer in model.bart.decoder.decoder_layers
        if layer.step_weights
        for w in layer.step_weights.all()
    ]
    assert weights and all(isinstance(w, layers.RowsWeight) and w.bf16 is None for w in weights)
    options = JobOptions(images=3, seed=1, top_k=1)
    tokens = model.tokens(["a cat"], options)[0]
    assert tokens.shape == (3, 256) and int(tokens.max()) < model.code_count
    assert torch.equal(tokens[:, :4], reference.tokens(["a cat"], options)[0][:, :4])
