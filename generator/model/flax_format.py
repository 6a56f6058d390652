"""Read and write flax's msgpack checkpoint format with `msgpack` + numpy (no JAX).

Facts from flax/serialization.py (``msgpack_serialize`` / ``msgpack_restore``):
- the file is one msgpack map, nested like the params pytree
  (``{"model": {"encoder": ...}, "lm_head": ...}``);
- an ndarray leaf is ``ExtType(1, packb((shape, dtype_name, C-order bytes)))``; code 3 is a numpy scalar
  in the same encoding, code 2 a complex scalar ``packb((real, imag))``;
- an array over 2**30 bytes is written as a map ``{"__msgpack_chunked_array__": True,
  "shape": {"0": d0, ...}, "chunks": {"0": flat_chunk, ...}}`` of flat chunks of at most 2**30 bytes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import torch

from generator.model.errors import CorruptCheckpoint

EXT_NDARRAY = 1
EXT_COMPLEX = 2
EXT_NPSCALAR = 3
CHUNKED_MARKER = "__msgpack_chunked_array__"
MAX_CHUNK_BYTES = 2**30

_TORCH_DTYPE_FROM_NAME = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "int32": torch.int32,
    "int64": torch.int64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


def _tensor_from_bytes(data: bytes) -> torch.Tensor:
    shape, dtype_name, buffer = msgpack.unpackb(data, raw=True)
    name = dtype_name.decode() if isinstance(dtype_name, bytes) else str(dtype_name)
    dtype = _TORCH_DTYPE_FROM_NAME.get(name)
    if dtype is None:
        raise CorruptCheckpoint(f"unsupported array dtype {name!r} in a flax msgpack file")
    count = 1
    for size in shape:
        count *= int(size)
    if len(buffer) != count * torch.empty((), dtype=dtype).element_size():
        raise CorruptCheckpoint(f"array of shape {tuple(shape)} {name} has {len(buffer)} bytes of data")
    if not count:
        return torch.empty([int(s) for s in shape], dtype=dtype)
    # torch.frombuffer reads bfloat16 too, which numpy cannot. The tensor shares the (read-only) bytes object
    # msgpack made for this array: no copy (dalle-mega is ~5 GB); the converter writes only to new tensors.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not writable.*", category=UserWarning)
        flat = torch.frombuffer(buffer, dtype=dtype)
    return flat.reshape([int(s) for s in shape])


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_NDARRAY:
        return _tensor_from_bytes(data)
    if code == EXT_NPSCALAR:
        return _tensor_from_bytes(data).reshape(())
    if code == EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _unchunk(node: Mapping[str, Any], where: str) -> torch.Tensor:
    try:
        shape = [int(node["shape"][str(i)]) for i in range(len(node["shape"]))]
        chunks = [node["chunks"][str(i)] for i in range(len(node["chunks"]))]
        return torch.cat([c.reshape(-1) for c in chunks]).reshape(shape)
    except (KeyError, TypeError, RuntimeError, AttributeError) as exc:
        raise CorruptCheckpoint(f"chunked array at {where!r} is malformed: {exc}") from exc


def _flatten(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    if isinstance(node, Mapping):
        if CHUNKED_MARKER in node:
            out[prefix] = _unchunk(node, prefix)
            return
        for key, value in node.items():
            _flatten(value, f"{prefix}/{key}" if prefix else str(key), out)
    elif isinstance(node, torch.Tensor):
        out[prefix] = node
    else:
        raise CorruptCheckpoint(f"unexpected {type(node).__name__} leaf at {prefix!r} in a flax params file")


def read_flax_msgpack(path: Path) -> dict[str, torch.Tensor]:
    """All arrays of a flax msgpack params file, keyed by their '/'-joined path (``model/encoder/...``)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        from generator.model.errors import CheckpointNotFound

        raise CheckpointNotFound(f"{path} is missing") from None
    try:
        tree = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (ValueError, msgpack.exceptions.ExtraData, msgpack.exceptions.UnpackException) as exc:
        raise CorruptCheckpoint(
            f"{path} ({len(data)} bytes) is not a complete flax msgpack file ({exc}): "
            "it is probably truncated; delete it and download it again"
        ) from exc
    if not isinstance(tree, Mapping):
        raise CorruptCheckpoint(f"{path} does not hold a params tree (found {type(tree).__name__})")
    del data
    if set(tree) == {"params"}:  # a checkpoint saved as {"params": ...} rather than the bare params tree
        tree = tree["params"]
    flat: dict[str, torch.Tensor] = {}
    _flatten(tree, "", flat)
    return flat


# ---- writing (used by generator.testing to make checkpoints in the published layout) ----


def _chunked(array: np.ndarray, chunk_bytes: int) -> dict[str, Any]:
    chunk_count = max(1, chunk_bytes // array.dtype.itemsize)
    flat = array.reshape(-1)
    chunks = [flat[i : i + chunk_count] for i in range(0, flat.size, chunk_count)]
    return {
        CHUNKED_MARKER: True,
        "shape": {str(i): int(s) for i, s in enumerate(array.shape)},
        "chunks": {str(i): c for i, c in enumerate(chunks)},
    }


def _with_chunks(node: Any, chunk_bytes: int) -> Any:
    if isinstance(node, Mapping):
        return {k: _with_chunks(v, chunk_bytes) for k, v in node.items()}
    if isinstance(node, np.ndarray) and node.nbytes > chunk_bytes:
        return _chunked(node, chunk_bytes)
    return node


def _ext_pack(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        payload = msgpack.packb((value.shape, value.dtype.name, value.tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(EXT_NDARRAY, payload)
    if isinstance(value, np.generic):
        array = np.asarray(value)
        payload = msgpack.packb((array.shape, array.dtype.name, array.tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(EXT_NPSCALAR, payload)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def write_flax_msgpack(path: Path, tree: Mapping[str, Any], *, chunk_bytes: int = MAX_CHUNK_BYTES) -> None:
    """Write a nested dict of numpy arrays as flax's ``msgpack_serialize`` does.

    `chunk_bytes` is flax's MAX_CHUNK_SIZE (2**30); tests pass a small value to exercise chunked arrays.
    """
    packed = msgpack.packb(_with_chunks(tree, chunk_bytes), default=_ext_pack, strict_types=True)
    path.write_bytes(packed)
