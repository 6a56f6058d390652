"""Loading the published layouts (scanned/unscanned, fp16/fp32, chunked) and refusing bad checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from generator.model.checkpoints import CACHE_FILE, load_dalle_bart, load_vqgan, resolve_checkpoint
from generator.model.errors import (
    CheckpointError,
    CheckpointNotFound,
    CorruptCheckpoint,
    HubUnreachable,
    UnsupportedConfig,
    WeightMismatch,
)
from generator.testing import make_tiny_checkpoints
from jobs.errors import ImagineError


def _state(directory: Path) -> dict[str, torch.Tensor]:
    model, _ = load_dalle_bart(directory, use_cache=False)
    return model.state_dict()


@pytest.mark.parametrize(
    ("is_scanned", "dtype", "chunk_bytes"),
    [(False, "float32", 2**30), (True, "float16", 2**30), (True, "float32", 1000), (False, "float16", 512)],
    ids=["unscanned-fp32", "scanned-fp16", "scanned-chunked", "unscanned-fp16-chunked"],
)
def test_layouts_load_to_the_same_weights(
    tmp_path: Path, tiny_checkpoints: tuple[Path, Path], is_scanned: bool, dtype: str, chunk_bytes: int
) -> None:
    dalle_dir, vqgan_dir = make_tiny_checkpoints(
        tmp_path, seed=0, is_scanned=is_scanned, dtype=dtype, chunk_bytes=chunk_bytes
    )
    if chunk_bytes < 2**30:  # the file really holds chunked arrays
        assert b"__msgpack_chunked_array__" in (dalle_dir / "flax_model.msgpack").read_bytes()
    reference, ours = _state(tiny_checkpoints[0]), _state(dalle_dir)
    assert ours.keys() == reference.keys()
    for key, value in reference.items():
        expected = value.half().float() if dtype == "float16" else value
        assert torch.equal(ours[key], expected), key
    vqgan, _ = load_vqgan(vqgan_dir, use_cache=False)
    assert vqgan.embedding.weight.dtype == torch.float32


def test_second_load_uses_the_safetensors_cache_and_a_rewrite_invalidates_it(tmp_path: Path) -> None:
    dalle_dir, vqgan_dir = make_tiny_checkpoints(tmp_path, seed=0)
    first, loaded = load_dalle_bart(dalle_dir)
    assert loaded.source == "msgpack" and (dalle_dir / CACHE_FILE).is_file()
    second, loaded = load_dalle_bart(dalle_dir)
    assert loaded.source == "safetensors"
    for key, value in first.state_dict().items():
        assert torch.equal(second.state_dict()[key], value)
    assert load_vqgan(vqgan_dir)[1].source == "msgpack" and load_vqgan(vqgan_dir)[1].source == "safetensors"

    make_tiny_checkpoints(tmp_path, seed=1)  # new weights, same place: the cache is stale
    third, loaded = load_dalle_bart(dalle_dir)
    assert loaded.source == "msgpack"
    assert not torch.equal(third.decoder.lm_head.weight, first.decoder.lm_head.weight)


def test_bfloat16_load(tiny_checkpoints: tuple[Path, Path]) -> None:
    model, _ = load_dalle_bart(tiny_checkpoints[0], dtype=torch.bfloat16, use_cache=False)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


@pytest.fixture()
def broken(tmp_path: Path, tiny_checkpoints: tuple[Path, Path]) -> Path:
    directory = tmp_path / "dalle"
    shutil.copytree(tiny_checkpoints[0], directory)
    (directory / CACHE_FILE).unlink(missing_ok=True)
    return directory


def test_truncated_msgpack(broken: Path) -> None:
    weights = broken / "flax_model.msgpack"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptCheckpoint, match="truncated"):
        load_dalle_bart(broken)


def test_missing_weights_file(broken: Path) -> None:
    (broken / "flax_model.msgpack").unlink()
    with pytest.raises(CheckpointNotFound, match=r"flax_model\.msgpack"):
        load_dalle_bart(broken)


def test_missing_config(broken: Path) -> None:
    (broken / "config.json").unlink()
    with pytest.raises(CheckpointNotFound, match=r"config\.json"):
        load_dalle_bart(broken)


def test_wrong_shapes_name_the_tensor(broken: Path) -> None:
    config = json.loads((broken / "config.json").read_text())
    config["decoder_ffn_dim"] += 8  # the weights were made with another size
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightMismatch, match=r"misshapen: decoder\.layers\.0\.glu\.fc0\.weight"):
        load_dalle_bart(broken)


def test_missing_layer_is_named(broken: Path) -> None:
    config = json.loads((broken / "config.json").read_text())
    config["decoder_layers"] = 3  # scanned stack holds 2
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightMismatch, match="leading axis should be decoder_layers = 3"):
        load_dalle_bart(broken)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "bart"}, "model_type is 'bart'"),
        ({"ln_positions": "swinv2"}, "ln_positions"),
        ({"use_glu": False}, "use_glu"),
        ({"ln_type": "rmsnorm"}, "ln_type"),
    ],
)
def test_non_dallebart_config(broken: Path, change: dict, message: str) -> None:
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(UnsupportedConfig, match=message):
        load_dalle_bart(broken)


def test_vqgan_given_a_dallebart_directory(tiny_checkpoints: tuple[Path, Path]) -> None:
    with pytest.raises(UnsupportedConfig, match="swap --model and --vqgan"):
        load_vqgan(tiny_checkpoints[0])


def test_hub_unreachable_names_the_repository(tmp_path: Path) -> None:
    """(What to do about it is added by the generator, which knows the settings: test_processes.py.)"""
    with pytest.raises(HubUnreachable, match=r"could not get 'dalle-mini/dalle-mini' .* Hugging Face hub"):
        resolve_checkpoint(
            "dalle-mini/dalle-mini", files=("config.json",), cache_dir=tmp_path, local_files_only=True
        )
    assert issubclass(HubUnreachable, CheckpointError) and issubclass(HubUnreachable, ImagineError)


def test_missing_local_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound, match="does not exist"):
        resolve_checkpoint(str(tmp_path / "nope"), files=("config.json",))


def test_make_tiny_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "generator.testing", "make-tiny", str(tmp_path), "--unscanned", "--fp16"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "dalle" / "config.json").read_text())
    assert config["model_type"] == "dallebart" and config["use_scan"] is False
    assert b"FlaxBartDecoderLayer_1" in (tmp_path / "dalle" / "flax_model.msgpack").read_bytes()
    model, _ = load_dalle_bart(tmp_path / "dalle")
    assert model.config.decoder_layers == 2
