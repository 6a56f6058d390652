"""CLIP ranking and Swin2SR upscaling: tiny random checkpoints saved by transformers in the published
layouts, loaded through the production path, checked against transformers' own classes."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from generator.model.clip import ClipRanker
from generator.model.errors import (
    CheckpointError,
    CheckpointNotFound,
    CorruptCheckpoint,
    HubUnreachable,
    UnsupportedConfig,
)
from generator.model.upscale import Upscaler, UpscaleStopped, tile_starts
from generator.testing import tiny_extras

PROMPT = "a red fox jumping over a snowy fence at dawn, " * 6  # longer than CLIP's 77 tokens


def _pictures(count: int, size: int = 32, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


@pytest.fixture(scope="module")
def clip_dir(tiny_checkpoints: tuple[Path, Path]) -> Path:
    return tiny_extras(tiny_checkpoints[0])[0]


@pytest.fixture(scope="module")
def upscaler_dir(tiny_checkpoints: tuple[Path, Path]) -> Path:
    return tiny_extras(tiny_checkpoints[0])[1]


def test_clip_scores_equal_transformers_own(clip_dir: Path) -> None:
    from transformers import CLIPModel, CLIPProcessor

    images = _pictures(6)
    ours = ClipRanker.load(clip_dir).scores(images, PROMPT)

    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(clip_dir))
    with torch.inference_mode():
        text = processor(text=[PROMPT], return_tensors="pt", padding=True, truncation=True)
        assert text["input_ids"].shape[1] == 77  # the prompt was cut to CLIP's context
        pixels = processor(images=images, return_tensors="pt")
        image_features = model.get_image_features(**pixels).pooler_output
        text_features = model.get_text_features(**text).pooler_output
    expected = torch.nn.functional.cosine_similarity(image_features, text_features, dim=-1).tolist()

    assert ours == pytest.approx(expected, abs=1e-5)
    assert len(set(np.round(ours, 4))) == len(ours)  # distinct, so an order is meaningful


@pytest.mark.parametrize(
    ("breakage", "error", "message"),
    [
        ("missing-weights", CheckpointNotFound, r"model\.safetensors is missing"),
        ("missing-processor", CheckpointNotFound, r"preprocessor_config\.json is missing"),
        ("truncated", CorruptCheckpoint, r"model\.safetensors is truncated or corrupt"),
        ("architecture", UnsupportedConfig, r"model_type is 'swin2sr', expected 'clip'"),
    ],
)
def test_a_broken_clip_checkpoint_is_one_line(
    tmp_path: Path, clip_dir: Path, upscaler_dir: Path, breakage: str, error: type, message: str
) -> None:
    broken = tmp_path / "clip"
    shutil.copytree(upscaler_dir if breakage == "architecture" else clip_dir, broken)
    if breakage == "missing-weights":
        (broken / "model.safetensors").unlink()
    elif breakage == "missing-processor":
        (broken / "preprocessor_config.json").unlink()
    elif breakage == "truncated":
        weights = broken / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(error, match=message) as raised:
        ClipRanker.load(broken)
    assert "\n" not in str(raised.value)


def test_a_misshapen_clip_tensor_is_named(tmp_path: Path, clip_dir: Path) -> None:
    broken = tmp_path / "clip"
    shutil.copytree(clip_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["projection_dim"] = 24  # the weights were saved with 16
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"CLIP weights in .* (do not match|cannot be read)"):
        ClipRanker.load(broken)


def test_clip_hub_unreachable_names_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachable, match=r"could not get 'openai/clip-vit-base-patch32'"):
        ClipRanker.load("openai/clip-vit-base-patch32", cache_dir=tmp_path)


def test_tiles_cover_every_pixel_with_overlap() -> None:
    assert tile_starts(256, 64, 8) == [0, 56, 112, 168, 192]
    assert tile_starts(32, 64, 8) == [0]
    for size in (65, 100, 256, 1000):
        starts = tile_starts(size, 64, 8)
        assert starts[-1] + 64 == size
        assert all(b - a <= 56 for a, b in itertools.pairwise(starts))


def test_upscale_is_four_times_larger_and_tiling_keeps_the_picture(upscaler_dir: Path) -> None:
    upscaler = Upscaler.load(upscaler_dir)
    [image] = _pictures(1, size=80, seed=3)
    whole = upscaler.upscale(image, tile=80)  # one tile: the model on the whole picture
    tiled = upscaler.upscale(image, tile=32, overlap=8)
    assert whole.size == tiled.size == (320, 320)
    difference = np.abs(np.asarray(whole, dtype=np.int16) - np.asarray(tiled, dtype=np.int16))
    # tiles see less context at their edges; averaged overlaps keep them close to the whole-image result
    assert difference.mean() < 8


def test_bfloat16_upscale_is_close_to_float32(upscaler_dir: Path) -> None:
    """bfloat16 autocast (the default where the chip multiplies bf16 natively) draws nearly the same
    picture as float32, tile settings taken from the upscaler."""
    [image] = _pictures(1, size=40, seed=5)  # 2×2 tiles; small: a CPU without native bf16 emulates it
    exact = Upscaler.load(upscaler_dir, precision="float32", tile=24, overlap=8)
    fast = Upscaler.load(upscaler_dir, precision="bfloat16", tile=24, overlap=8)
    assert (exact.precision, fast.precision) == ("float32", "bfloat16")
    a, b = (np.asarray(u.upscale(image), dtype=np.float64) for u in (exact, fast))
    assert a.shape == b.shape == (160, 160, 3)
    psnr = 10 * np.log10(255.0**2 / max(((a - b) ** 2).mean(), 1e-12))
    assert psnr > 30 and not np.array_equal(a, b)  # close, yet not the very same arithmetic


def test_upscale_stops_between_tiles(upscaler_dir: Path) -> None:
    upscaler = Upscaler.load(upscaler_dir)
    seen: list[float] = []
    with pytest.raises(UpscaleStopped):
        upscaler.upscale(
            _pictures(1, size=96)[0],
            tile=32,
            overlap=8,
            should_stop=lambda: len(seen) >= 2,
            progress=seen.append,
        )
    assert len(seen) == 2 and seen[-1] < 1.0


def test_a_broken_upscaler_checkpoint_is_one_line(tmp_path: Path, clip_dir: Path) -> None:
    with pytest.raises(UnsupportedConfig, match=r"model_type is 'clip', expected 'swin2sr'"):
        Upscaler.load(clip_dir)
