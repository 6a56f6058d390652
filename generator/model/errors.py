"""Every error the model code raises, under the project's one root (`jobs.errors.ImagineError`).

    ImagineError
    └── CheckpointError            a checkpoint cannot be used; the message names the file or tensor
        ├── CheckpointNotFound     a local directory or a file in it is missing
        ├── HubUnreachable         the Hugging Face hub cannot be reached and nothing is cached
        ├── CorruptCheckpoint      flax_model.msgpack (or a cached .safetensors) cannot be decoded
        ├── UnsupportedConfig      config.json is not a DalleBart / VQGAN config this code implements
        └── WeightMismatch         a tensor is missing, unexpected, or has the wrong shape

Docstrings say what happened and how to fix it.
"""

from __future__ import annotations

from jobs.errors import ImagineError


class CheckpointError(ImagineError):
    """A model checkpoint cannot be used: see the message for the file or tensor at fault.

    `part` says which checkpoint: "model" (DalleBart and its tokenizer) or "vqgan"; None when unknown."""

    exit_status = 8
    part: str | None = None


class CheckpointNotFound(CheckpointError):
    """The checkpoint directory or a file in it is missing: point --model/--vqgan at a directory
    holding config.json and flax_model.msgpack (the layout of the dalle-mini repositories on the hub)."""


class HubUnreachable(CheckpointError):
    """The checkpoint is not cached and the Hugging Face hub cannot be reached."""


class CorruptCheckpoint(CheckpointError):
    """A weights file is truncated or not in flax's msgpack format: delete it and download it again."""


class UnsupportedConfig(CheckpointError):
    """config.json describes a model this code does not implement (only DalleBart "normformer" + GLU
    checkpoints such as dalle-mini/dalle-mini and dalle-mini/dalle-mega, and the f16 VQGAN)."""


class WeightMismatch(CheckpointError):
    """The weights do not fit the model config.json describes (a tensor is missing, unexpected or
    misshapen): the weights and config.json come from different checkpoints."""
