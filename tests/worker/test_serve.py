"""The process entry's pieces: model load errors as one line, log records as data, the registries."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from bot.frontends import FRONTENDS, enabled_frontends
from bot.posters import Poster, make_posters
from bot.stored import StoredResultPoster
from generator.model import layers
from generator.serve import ModelLoadError, load_model
from generator.testing import tiny_extras, tiny_settings
from jobs.settings import load_settings


def test_a_corrupt_checkpoint_is_one_line(tmp_path: Path, tiny_checkpoints: tuple[Path, Path]) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in tiny_checkpoints[0].iterdir():
        if file.is_file() and "safetensors" not in file.name:
            (broken / file.name).write_bytes(file.read_bytes())
    weights = broken / "flax_model.msgpack"
    weights.write_bytes(weights.read_bytes()[:1000])
    settings = load_settings(None, data_dir=tmp_path, model_dir=broken, vqgan_dir=tiny_checkpoints[1])
    with pytest.raises(ModelLoadError) as caught:
        load_model(settings)
    message = str(caught.value)
    assert message.startswith("cannot load the model: ") and "\n" not in message
    assert "flax_model.msgpack" in message


def test_the_tiny_checkpoint_loads(tmp_path: Path, tiny_checkpoints: tuple[Path, Path]) -> None:
    clip, upscaler = tiny_extras(tiny_checkpoints[0])
    loaded = load_model(tiny_settings(tmp_path, tiny_checkpoints))
    assert loaded.device == "cpu" and loaded.name == str(tiny_checkpoints[0])
    assert loaded.ranker.directory == clip and loaded.upscaler.directory == upscaler
    assert loaded.default_candidates == 1  # rank only on a CPU


def test_a_missing_clip_file_is_one_line_naming_its_setting(
    tmp_path: Path, tiny_checkpoints: tuple[Path, Path]
) -> None:
    clip, _ = tiny_extras(tiny_checkpoints[0])
    broken = tmp_path / "clip"
    shutil.copytree(clip, broken)
    (broken / "tokenizer.json").unlink()
    settings = tiny_settings(tmp_path, tiny_checkpoints, clip_dir=broken)
    with pytest.raises(ModelLoadError) as caught:
        load_model(settings)
    message = str(caught.value)
    assert "tokenizer.json is missing" in message and "IMAGINE_CLIP_DIR" in message and "\n" not in message


def test_reduced_decoder_weights_on_a_gpu_are_refused_in_one_line(
    tmp_path: Path, tiny_checkpoints: tuple[Path, Path]
) -> None:
    settings = tiny_settings(tmp_path, tiny_checkpoints, device="cuda", decoder_weights="int8")
    with pytest.raises(ModelLoadError) as caught:
        load_model(settings)
    assert str(caught.value) == (
        "IMAGINE_DECODER_WEIGHTS=int8 is a CPU mode; on cuda set it to float32 and pick the precision with "
        "IMAGINE_DTYPE"
    )


def test_bfloat16_on_a_cpu_without_it_loads_and_warns_that_it_is_slower(
    tmp_path: Path,
    tiny_checkpoints: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An AVX2-only CPU emulates bfloat16: asked for, it still works, and the admin learns the cost."""
    monkeypatch.setattr(layers, "NATIVE_BF16", False)
    settings = tiny_settings(tmp_path, tiny_checkpoints, decoder_weights="bfloat16", vqgan_dtype="bfloat16")
    with caplog.at_level(logging.WARNING, logger="generator.serve"):
        loaded = load_model(settings)
    assert loaded.model.bart.decoder.weight_format == "bfloat16"
    assert [r.getMessage() for r in caplog.records if r.name == "generator.serve"] == [
        "IMAGINE_DECODER_WEIGHTS=bfloat16 and IMAGINE_VQGAN_DTYPE=bfloat16: this CPU has no native "
        "bfloat16 (AVX512-BF16 or AMX): slower than float32 here"
    ]


def test_posters_and_frontends_registries(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path)
    posters = make_posters(settings)
    assert isinstance(posters["cli"], StoredResultPoster) and isinstance(posters["web"], StoredResultPoster)
    assert isinstance(posters["cli"], Poster)
    assert "discord" not in posters  # no token: no poster
    assert enabled_frontends(settings) == []
    with_dashboard = load_settings(
        None, data_dir=tmp_path, dashboard_enabled=True, dashboard_password="x" * 16
    )
    assert [f.name for f in enabled_frontends(with_dashboard)] == ["dashboard"]
    assert {f.name for f in FRONTENDS} == {"discord", "slack", "dashboard"}
