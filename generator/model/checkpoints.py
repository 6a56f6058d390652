"""Find, download, convert and load the published checkpoints, strictly.

A checkpoint is a directory in the layout of the hub repositories ``dalle-mini/dalle-mini``,
``dalle-mini/dalle-mega`` and ``dalle-mini/vqgan_imagenet_f16_16384``: ``config.json`` +
``flax_model.msgpack`` (+ tokenizer files for DalleBart). It is either a local directory or a hub repo id,
downloaded once by ``huggingface_hub`` (revision pinnable, resumable, progress bar, HF_HUB_OFFLINE honoured).

Conversion (flax → torch) is a rename table plus a transpose of every Dense kernel (flax stores (in, out),
torch (out, in)) and of every Conv kernel ((kh, kw, in, out) → (out, in, kh, kw)); scanned layer stacks
(``FlaxBartEncoderLayers`` with a leading layer axis) and unscanned ones (``FlaxBartEncoderLayer_3``) both
map to ``encoder.layers.3``. Every key must be used and every model tensor filled with the right shape,
else `WeightMismatch` names them. The converted tensors are cached as safetensors next to the msgpack file
(stamped with its size and mtime), so the next start skips msgpack decoding and conversion.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import safetensors.torch
import torch
from torch import nn

from generator.model.bart import DalleBart
from generator.model.config import DalleBartConfig, VQGanConfig
from generator.model.errors import CheckpointNotFound, HubUnreachable, WeightMismatch
from generator.model.flax_format import read_flax_msgpack
from generator.model.vqgan import VQGanDetokenizer

logger = logging.getLogger(__name__)

DALLE_MINI = "dalle-mini/dalle-mini"
DALLE_MEGA = "dalle-mini/dalle-mega"
VQGAN = "dalle-mini/vqgan_imagenet_f16_16384"
ALIASES = {"mini": DALLE_MINI, "mega": DALLE_MEGA, "vqgan": VQGAN}
WEIGHTS_FILE = "flax_model.msgpack"
CACHE_FILE = "flax_model.converted.safetensors"
CACHE_FORMAT = "imagine-generator-2"  # bump when a converter changes: stale caches are rebuilt
DALLE_FILES = (
    "config.json",
    WEIGHTS_FILE,
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "enwiki-words-frequency.txt",
)
VQGAN_FILES = ("config.json", WEIGHTS_FILE)

WeightsSource = Literal["msgpack", "safetensors"]


# ---- locating and downloading ----


def resolve_checkpoint(
    spec: str | Path,
    *,
    files: tuple[str, ...],
    revision: str | None = None,
    cache_dir: Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local checkpoint directory for `spec`: an existing directory, an alias (mini, mega, vqgan),
    or a hub repo id downloaded (once) into the huggingface_hub cache."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    repo_id = ALIASES.get(text, text)
    looks_like_path = isinstance(spec, Path) or text.startswith((".", "/", "~")) or repo_id.count("/") != 1
    if looks_like_path:
        raise CheckpointNotFound(
            f"checkpoint directory {text!r} does not exist: give a directory holding config.json and "
            f"{WEIGHTS_FILE}, or a hub repo id such as {DALLE_MINI!r}"
        )
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=list(files),
            local_files_only=local_files_only,
        )
    except Exception as exc:  # huggingface_hub raises many types (offline, HTTP, DNS, missing repo)
        raise HubUnreachable(
            f"could not get {repo_id!r}{f' at revision {revision}' if revision else ''} "
            "from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    return Path(local)


# ---- flax → torch key tables ----

_LAYER_MODULES = {
    "LayerNorm_0": "pre_self_attn_layer_norm",
    "FlaxBartAttention_0": "self_attn",
    "LayerNorm_1": "self_attn_layer_norm",
    "LayerNorm_2": "pre_encoder_attn_layer_norm",
    "FlaxBartAttention_1": "encoder_attn",
    "LayerNorm_3": "encoder_attn_layer_norm",
    "GLU_0": "glu",
}
_GLU_MODULES = {
    "LayerNorm_0": "ln0",
    "Dense_0": "fc0",
    "Dense_1": "fc1",
    "LayerNorm_1": "ln1",
    "Dense_2": "fc2",
}
_LEAVES = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}
_LAYER_KEY = re.compile(r"^model/(encoder|decoder)/layers/FlaxBart(?:Encoder|Decoder)Layer(s|_(\d+))/(.+)$")


def _owned(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor with its own memory (msgpack arrays are views of read-only bytes)."""
    return tensor.clone() if tensor.is_contiguous() else tensor.contiguous()


def _leaf(flax_leaf: str, tensor: torch.Tensor, where: str) -> tuple[str, torch.Tensor]:
    if flax_leaf not in _LEAVES:
        raise WeightMismatch(f"unexpected tensor {where!r} in {WEIGHTS_FILE}")
    if flax_leaf == "kernel":
        tensor = tensor.transpose(-1, -2)  # Dense (in, out) → Linear (out, in); scanned: per layer
    return _LEAVES[flax_leaf], tensor


def _layer_suffix(rest: str, tensor: torch.Tensor, where: str) -> tuple[str, torch.Tensor]:
    parts = rest.split("/")
    module = _LAYER_MODULES.get(parts[0])
    if module is None:
        raise WeightMismatch(f"unexpected tensor {where!r} in {WEIGHTS_FILE}")
    if module == "glu" and len(parts) == 3 and parts[1] in _GLU_MODULES:
        name, tensor = _leaf(parts[2], tensor, where)
        return f"glu.{_GLU_MODULES[parts[1]]}.{name}", tensor
    if module.endswith("attn") and len(parts) == 3 and parts[1] in ("q_proj", "k_proj", "v_proj", "out_proj"):
        name, tensor = _leaf(parts[2], tensor, where)
        return f"{module}.{parts[1]}.{name}", tensor
    if module.endswith("layer_norm") and len(parts) == 2:
        name, tensor = _leaf(parts[1], tensor, where)
        return f"{module}.{name}", tensor
    raise WeightMismatch(f"unexpected tensor {where!r} in {WEIGHTS_FILE}")


def dalle_bart_state_from_flax(
    flat: Mapping[str, torch.Tensor], config: DalleBartConfig
) -> dict[str, torch.Tensor]:
    """Flax params (flat '/' keys) → DalleBart state dict; scanned and unscanned layouts alike."""
    state: dict[str, torch.Tensor] = {}
    layer_counts = {"encoder": config.encoder_layers, "decoder": config.decoder_layers}
    for key, tensor in flat.items():
        if key == "lm_head/kernel":
            state["decoder.lm_head.weight"] = tensor.T
            continue
        match = _LAYER_KEY.match(key)
        if match:
            codec, scanned, index, rest = match.groups()
            if scanned == "s":
                if tensor.ndim < 2 or tensor.shape[0] != layer_counts[codec]:
                    raise WeightMismatch(
                        f"scanned tensor {key!r} has shape {tuple(tensor.shape)}: its leading axis should be "
                        f"{codec}_layers = {layer_counts[codec]} (config.json)"
                    )
                for i in range(tensor.shape[0]):
                    suffix, t = _layer_suffix(rest, tensor[i], key)
                    state[f"{codec}.layers.{i}.{suffix}"] = t
            else:
                suffix, t = _layer_suffix(rest, tensor, key)
                state[f"{codec}.layers.{index}.{suffix}"] = t
            continue
        parts = key.split("/")
        if (
            len(parts) == 4
            and parts[0] == "model"
            and parts[1] in ("encoder", "decoder")
            and parts[2] in ("embed_tokens", "embed_positions", "layernorm_embedding", "final_ln")
        ):
            name, t = _leaf(parts[3], tensor, key)
            state[f"{parts[1]}.{parts[2]}.{name}"] = t
            continue
        raise WeightMismatch(f"unexpected tensor {key!r} in {WEIGHTS_FILE}")
    return {k: _owned(v) for k, v in state.items()}


def vqgan_state_from_flax(flat: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vqgan-jax params → VQGanDetokenizer state dict (the encoder and quant_conv are not needed to draw)."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor in flat.items():
        parts = key.split("/")
        if parts[0] in ("encoder", "quant_conv"):
            continue  # image → codes half of the VQGAN: unused
        if key == "quantize/embedding/embedding":
            state["embedding.weight"] = tensor
            continue
        if parts[0] not in ("decoder", "post_quant_conv"):
            raise WeightMismatch(f"unexpected tensor {key!r} in the VQGAN {WEIGHTS_FILE}")
        # vqgan-jax names list items "up_3/block_0", "up_3/attn_1"; taming indexes them "up.3.block.0"
        # (the middle block's "block_1" / "attn_1" are attribute names in both)
        names = parts[:-1]
        if len(names) > 1 and re.fullmatch(r"up_\d+", names[1]):
            names = [names[0], *(re.sub(r"^(up|block|attn)_(\d+)$", r"\1.\2", p) for p in names[1:])]
        leaf = parts[-1]
        if leaf == "kernel":
            if tensor.ndim != 4:
                raise WeightMismatch(
                    f"VQGAN tensor {key!r} should be a 4-d conv kernel, has shape {tuple(tensor.shape)}"
                )
            tensor = tensor.permute(3, 2, 0, 1)  # (kh, kw, in, out) → (out, in, kh, kw)
        elif leaf not in ("scale", "bias"):
            raise WeightMismatch(f"unexpected tensor {key!r} in the VQGAN {WEIGHTS_FILE}")
        state[".".join([*names, "bias" if leaf == "bias" else "weight"])] = tensor
    return {k: _owned(v) for k, v in state.items()}


# ---- strict loading ----


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], *, what: str) -> None:
    """Raise `WeightMismatch` naming every missing, unexpected or misshapen tensor."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = [
        f"{k}: checkpoint {tuple(state[k].shape)}, config.json implies {expected[k]}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != expected[k]
    ]
    problems = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen)):
        if names:
            shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
            problems.append(f"{len(names)} {label}: {shown}")
    if problems:
        raise WeightMismatch(f"{what} does not match its config.json — " + "; ".join(problems))


def _cache_stamp(source: Path) -> dict[str, str]:
    stat = source.stat()
    return {
        "format": CACHE_FORMAT,
        "source_size": str(stat.st_size),
        "source_mtime_ns": str(stat.st_mtime_ns),
    }


def load_converted_state(
    directory: Path,
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
    *,
    use_cache: bool = True,
) -> tuple[dict[str, torch.Tensor], WeightsSource]:
    """The converted state dict of ``directory/flax_model.msgpack``, from the safetensors cache when fresh."""
    source = directory / WEIGHTS_FILE
    if not source.is_file():
        raise CheckpointNotFound(f"{source} is missing: the checkpoint directory must hold {WEIGHTS_FILE}")
    cache = directory / CACHE_FILE
    stamp = _cache_stamp(source)
    if use_cache and cache.is_file():
        try:
            with safetensors.safe_open(str(cache), framework="pt") as handle:
                metadata = handle.metadata() or {}
            if metadata == stamp:
                return safetensors.torch.load_file(str(cache)), "safetensors"
            logger.info("converted cache %s is stale; converting %s again", cache, source)
        except (OSError, safetensors.SafetensorError) as exc:
            logger.warning("ignoring unreadable converted cache %s: %s", cache, exc)
    state = convert(read_flax_msgpack(source))
    if use_cache:
        temporary = cache.with_suffix(f".tmp{os.getpid()}")
        try:
            safetensors.torch.save_file(state, str(temporary), metadata=stamp)
            os.replace(temporary, cache)
        except OSError as exc:  # a read-only checkpoint directory: run without the cache
            logger.warning("could not write converted cache %s: %s", cache, exc)
            temporary.unlink(missing_ok=True)
    return state, "msgpack"


def _materialize(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    what: str,
    dtype: torch.dtype,
    device: torch.device,
) -> None:
    check_state_dict(model, state, what=what)
    model.load_state_dict(
        {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in state.items()},
        strict=True,
        assign=True,
    )


@dataclass(frozen=True)
class Loaded:
    directory: Path
    source: WeightsSource  # "safetensors" when the converted cache was used


def load_dalle_bart(
    directory: Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    use_cache: bool = True,
) -> tuple[DalleBart, Loaded]:
    config = DalleBartConfig.from_directory(directory)
    state, source = load_converted_state(
        directory, lambda flat: dalle_bart_state_from_flax(flat, config), use_cache=use_cache
    )
    with torch.device("meta"):
        model = DalleBart(config)
    _materialize(
        model, state, what=f"DalleBart weights in {directory}", dtype=dtype, device=torch.device(device)
    )
    return model.eval().requires_grad_(False), Loaded(directory, source)


def load_vqgan(
    directory: Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    use_cache: bool = True,
) -> tuple[VQGanDetokenizer, Loaded]:
    config = VQGanConfig.from_directory(directory)
    state, source = load_converted_state(directory, vqgan_state_from_flax, use_cache=use_cache)
    with torch.device("meta"):
        model = VQGanDetokenizer(config)
    _materialize(model, state, what=f"VQGAN weights in {directory}", dtype=dtype, device=torch.device(device))
    # assign=True took the loaded layout; see VQGanDetokenizer (torch's stubs omit memory_format)
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    return model.eval().requires_grad_(False), Loaded(directory, source)
