"""Checkpoints saved by transformers' `save_pretrained` (CLIP, Swin2SR): found like the others, refused
in one line.

A directory holds ``config.json`` + ``model.safetensors`` (+ the checkpoint's own processor files). It
is a local directory or a hub repo id, downloaded once by `resolve_checkpoint` (revision pinnable,
HF_HUB_OFFLINE honoured). Loading is strict, as for DalleBart: a missing file, a config of another
architecture, truncated weights, or a missing, unexpected or misshapen tensor each raise a
`CheckpointError` whose message names the file or tensor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import safetensors
import torch

from generator.model.errors import CheckpointNotFound, CorruptCheckpoint, UnsupportedConfig, WeightMismatch

SAFETENSORS_FILE = "model.safetensors"

M = TypeVar("M", bound=torch.nn.Module)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hush transformers' own loading chatter (progress bars; "falling back to the PIL processor", as
    torchvision is deliberately not installed): it would reach the terminal of `imagine "prompt"` through
    the generator's stderr, and what matters about a load is said in our one line."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def check_hf_directory(directory: Path, *, model_type: str, what: str, files: tuple[str, ...]) -> None:
    """Refuse, by name, a directory that lacks `files` or whose config.json is not `model_type`."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointNotFound(f"{config_path} is missing: the {what} checkpoint directory holds it")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedConfig(f"{config_path} is not valid JSON: {exc}") from exc
    found = config.get("model_type") if isinstance(config, dict) else None
    if found != model_type:
        raise UnsupportedConfig(
            f"{config_path}: model_type is {found!r}, expected {model_type!r} (a {what} checkpoint)"
        )
    for name in (SAFETENSORS_FILE, *files):
        if not (directory / name).is_file():
            raise CheckpointNotFound(
                f"{directory / name} is missing: the {what} checkpoint directory holds it"
            )
    try:  # read the header and every tensor's extent: a truncated download fails here, by name
        with safetensors.safe_open(str(directory / SAFETENSORS_FILE), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                handle.get_slice(key)
    except (OSError, safetensors.SafetensorError) as exc:
        raise CorruptCheckpoint(
            f"{directory / SAFETENSORS_FILE} is truncated or corrupt ({exc}): delete it and download it again"
        ) from exc


def load_strict(model_class: type[M], directory: Path, *, what: str, device: torch.device | str) -> M:
    """`model_class.from_pretrained(directory)`, refusing missing, unexpected or misshapen tensors."""
    try:
        loaded: Any = model_class.from_pretrained(  # type: ignore[attr-defined]
            str(directory), local_files_only=True, output_loading_info=True
        )
    except (OSError, ValueError, RuntimeError, safetensors.SafetensorError) as exc:
        message = " ".join(str(exc).split())[:400]
        if "size mismatch" in message or "shape" in message:
            raise WeightMismatch(
                f"{what} weights in {directory} do not match its config.json: {message}"
            ) from exc
        raise CorruptCheckpoint(f"{what} weights in {directory} cannot be read: {message}") from exc
    model, info = loaded
    problems = [
        f"{len(names)} {label}: {', '.join(str(n) for n in list(names)[:8])}"
        for label, names in (
            ("missing", info.get("missing_keys") or []),
            ("unexpected", info.get("unexpected_keys") or []),
            ("misshapen", info.get("mismatched_keys") or []),
        )
        if names
    ]
    if problems:
        raise WeightMismatch(
            f"{what} weights in {directory} do not match its config.json — " + "; ".join(problems)
        )
    return model.to(device).eval().requires_grad_(False)
