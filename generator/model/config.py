"""The two frozen configs, filled from a checkpoint's own ``config.json``.

`DalleBartConfig` reads the keys dalle-mini's ``DalleBartConfig`` (src/dalle_mini/model/configuration.py)
writes; `VQGanConfig` the keys of vqgan-jax's ``VQGANConfig``. Transformer variants this code does not
implement (swinv2, rmsnorm, cosine attention, biases, ...) are refused by name, never silently ignored.

Published sizes (parameter counts for the BART part):

    dalle-mini/dalle-mini   d_model 1024, 12+12 layers, 16 heads, ffn 2730, text vocab 50264,
                            image vocab 16384            ~0.44 B
    dalle-mini/dalle-mega   d_model 2048, 24+24 layers, 32 heads, ffn 4096, text vocab 50272,
                            image vocab 16415 (padded for sharding; 16384 real codes)   ~2.6 B
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from generator.model.errors import CheckpointNotFound, UnsupportedConfig

# What a supported DalleBart config must say for each variant flag (key: required value).
_DALLE_BART_REQUIRED: dict[str, Any] = {
    "ln_type": "layernorm",
    "ln_positions": "normformer",
    "use_glu": True,
    "use_bias": False,
    "use_head_scale": False,
    "use_cosine_attention": False,
    "use_swin_position_embeddings": False,
    "use_deepnet_scaling": False,
    "use_subln_init": False,
    "use_alibi": False,
    "use_absolute_position_embeddings": True,
    "sinkhorn_iters": 1,
    "activation_function": "gelu",
    "tie_word_embeddings": False,
}


def read_config_json(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointNotFound(
            f"{path} is missing: a checkpoint directory holds config.json and flax_model.msgpack"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedConfig(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UnsupportedConfig(f"{path} is not a JSON object")
    return data


@dataclass(frozen=True)
class DalleBartConfig:
    """DalleBart sizes and the few switches the supported variant still has.

    The defaults are dalle-mini's own ``DalleBartConfig`` constructor defaults: what a config.json that
    leaves a key out means. The published checkpoints' sizes are in the module docstring (the mini's ffn
    is 2730, not the constructor's 4096).
    """

    d_model: int = 1024
    encoder_layers: int = 12
    decoder_layers: int = 12
    encoder_attention_heads: int = 16
    decoder_attention_heads: int = 16
    encoder_ffn_dim: int = 4096
    decoder_ffn_dim: int = 4096
    encoder_vocab_size: int = 50264
    image_vocab_size: int = 16384  # lm_head and decoder embeddings have one more row: the start token
    max_text_length: int = 64
    image_length: int = 256  # 16 x 16 VQGAN codes
    decoder_start_token_id: int = 16384
    normalize_text: bool = False
    scale_embedding: bool = False  # multiply embeddings by sqrt(d_model)
    force_ln_scale: bool = False  # pre-norms have a scale too (published checkpoints: bias only)
    use_final_ln_encoder: bool = True
    use_final_ln_decoder: bool = True
    use_scan: bool = True  # layout of the layer weights in flax_model.msgpack (we read either)
    layer_norm_eps: float = 1e-5  # hard-coded in dalle-mini

    @classmethod
    def from_json_dict(cls, data: dict[str, Any], *, source: str = "config.json") -> DalleBartConfig:
        if data.get("model_type") != "dallebart":
            raise UnsupportedConfig(
                f"{source}: model_type is {data.get('model_type')!r}, expected 'dallebart' "
                "(a dalle-mini/dalle-mini or dalle-mini/dalle-mega checkpoint)"
            )
        for key, required in _DALLE_BART_REQUIRED.items():
            if key in data and data[key] != required:
                raise UnsupportedConfig(
                    f"{source}: {key} = {data[key]!r} is not supported (only {required!r} is implemented)"
                )
        values: dict[str, Any] = {}
        for key in _SIZE_KEYS:
            value = data.get(key, _DEFAULTS[key])
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UnsupportedConfig(f"{source}: {key} must be a positive integer, got {value!r}")
            values[key] = value
        for heads in ("encoder_attention_heads", "decoder_attention_heads"):
            if values["d_model"] % values[heads]:
                raise UnsupportedConfig(f"{source}: d_model {values['d_model']} is not divisible by {heads}")
        start = data.get("decoder_start_token_id", values["image_vocab_size"])
        if not isinstance(start, int) or not 0 <= start <= values["image_vocab_size"]:
            raise UnsupportedConfig(
                f"{source}: decoder_start_token_id {start!r} is outside the image vocabulary"
            )
        ln_positions = data.get("ln_positions", "normformer")
        return cls(
            **values,
            decoder_start_token_id=start,
            normalize_text=bool(data.get("normalize_text", False)),
            scale_embedding=bool(data.get("scale_embedding", False)),
            force_ln_scale=bool(data.get("force_ln_scale", False)),
            use_final_ln_encoder=bool(data.get("use_final_ln_encoder", True)),
            use_final_ln_decoder=bool(data.get("use_final_ln_decoder", True)),
            use_scan=bool(data["use_scan"]) if data.get("use_scan") is not None else ln_positions != "swinv2",
        )

    @classmethod
    def from_directory(cls, directory: Path) -> DalleBartConfig:
        return cls.from_json_dict(read_config_json(directory), source=str(directory / "config.json"))

    def to_json_dict(self) -> dict[str, Any]:
        """The published config.json keys (what `generator.testing` writes)."""
        fields = asdict(self)
        del fields["layer_norm_eps"]
        start = fields["decoder_start_token_id"]
        return {
            "activation_dropout": 0.0,
            "activation_function": "gelu",
            "architectures": ["eBart"],
            "attention_dropout": 0.0,
            "bos_token_id": start + 1,
            **{
                k: fields[k]
                for k in ("d_model", "decoder_attention_heads", "decoder_ffn_dim", "decoder_layers")
            },
            "decoder_start_token_id": start,
            "do_sample": True,
            "dropout": 0.0,
            **{k: fields[k] for k in ("encoder_attention_heads", "encoder_ffn_dim", "encoder_layers")},
            "encoder_vocab_size": fields["encoder_vocab_size"],
            "eos_token_id": start + 1,
            "force_ln_scale": fields["force_ln_scale"],
            "gradient_checkpointing": True,
            "image_length": fields["image_length"],
            "image_vocab_size": fields["image_vocab_size"],
            "init_std": 0.02,
            "is_encoder_decoder": True,
            "ln_positions": "normformer",
            "ln_type": "layernorm",
            "max_length": fields["image_length"] + 1,
            "max_text_length": fields["max_text_length"],
            "min_length": fields["image_length"] + 1,
            "model_type": "dallebart",
            "normalize_text": fields["normalize_text"],
            "pad_token_id": start + 1,
            "scale_embedding": fields["scale_embedding"],
            "sinkhorn_iters": 1,
            "tau_init": 0.05,
            "tie_word_embeddings": False,
            "torch_dtype": "float32",
            "transformers_version": "4.19.0.dev0",
            "use_absolute_position_embeddings": True,
            "use_alibi": False,
            "use_bias": False,
            "use_cache": True,
            "use_cosine_attention": False,
            "use_deepnet_scaling": False,
            "use_final_ln_decoder": fields["use_final_ln_decoder"],
            "use_final_ln_encoder": fields["use_final_ln_encoder"],
            "use_glu": True,
            "use_head_scale": False,
            "use_scan": fields["use_scan"],
            "use_subln_init": False,
            "use_swin_position_embeddings": False,
        }


_DEFAULTS = {spec.name: spec.default for spec in fields(DalleBartConfig)}

# The published checkpoints' sizes (their config.json), for benches that build random-weight models.
MINI_CONFIG = DalleBartConfig(encoder_ffn_dim=2730, decoder_ffn_dim=2730)
MEGA_CONFIG = DalleBartConfig(
    d_model=2048,
    encoder_layers=24,
    decoder_layers=24,
    encoder_attention_heads=32,
    decoder_attention_heads=32,
    encoder_vocab_size=50272,
    image_vocab_size=16415,  # padded for sharding; 16384 real codes
    decoder_start_token_id=16384,
)
_SIZE_KEYS = (
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "encoder_vocab_size",
    "image_vocab_size",
    "max_text_length",
    "image_length",
)


@dataclass(frozen=True)
class VQGanConfig:
    """The taming-transformers VQGAN decoder's sizes (f16: 256 px from a 16 x 16 grid of codes)."""

    ch: int = 128
    out_ch: int = 3
    in_channels: int = 3
    num_res_blocks: int = 2
    resolution: int = 256
    z_channels: int = 256
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    attn_resolutions: tuple[int, ...] = (16,)
    n_embed: int = 16384  # codebook size: the number of real image codes
    embed_dim: int = 256
    resamp_with_conv: bool = True

    @property
    def grid_count(self) -> int:
        """Codes per side of an image (16 for the f16 VQGAN at 256 px)."""
        return self.resolution // 2 ** (len(self.ch_mult) - 1)

    @classmethod
    def from_json_dict(cls, data: dict[str, Any], *, source: str = "config.json") -> VQGanConfig:
        if data.get("model_type") == "dallebart" or "d_model" in data:
            raise UnsupportedConfig(
                f"{source} is a DalleBart config, not a VQGAN config: swap --model and --vqgan"
            )
        missing = [
            k for k in ("ch", "ch_mult", "n_embed", "embed_dim", "z_channels", "resolution") if k not in data
        ]
        if missing:
            raise UnsupportedConfig(f"{source} is not a VQGAN config (missing {', '.join(missing)})")
        if data.get("double_z", False) or data.get("give_pre_end", False):
            raise UnsupportedConfig(f"{source}: double_z / give_pre_end VQGANs are not supported")
        try:
            config = cls(
                ch=int(data["ch"]),
                out_ch=int(data.get("out_ch", 3)),
                in_channels=int(data.get("in_channels", 3)),
                num_res_blocks=int(data.get("num_res_blocks", 2)),
                resolution=int(data["resolution"]),
                z_channels=int(data["z_channels"]),
                ch_mult=tuple(int(m) for m in data["ch_mult"]),
                attn_resolutions=tuple(int(r) for r in data.get("attn_resolutions", (16,))),
                n_embed=int(data["n_embed"]),
                embed_dim=int(data["embed_dim"]),
                resamp_with_conv=bool(data.get("resamp_with_conv", True)),
            )
        except (TypeError, ValueError) as exc:
            raise UnsupportedConfig(f"{source}: {exc}") from exc
        if config.embed_dim != config.z_channels:
            raise UnsupportedConfig(
                f"{source}: embed_dim {config.embed_dim} != z_channels {config.z_channels}"
            )
        return config

    @classmethod
    def from_directory(cls, directory: Path) -> VQGanConfig:
        return cls.from_json_dict(read_config_json(directory), source=str(directory / "config.json"))

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "architectures": ["VQModel"],
            "attn_resolutions": list(self.attn_resolutions),
            "ch": self.ch,
            "ch_mult": list(self.ch_mult),
            "double_z": False,
            "dropout": 0.0,
            "embed_dim": self.embed_dim,
            "give_pre_end": False,
            "in_channels": self.in_channels,
            "n_embed": self.n_embed,
            "num_res_blocks": self.num_res_blocks,
            "out_ch": self.out_ch,
            "resamp_with_conv": self.resamp_with_conv,
            "resolution": self.resolution,
            "transformers_version": "4.19.0.dev0",
            "z_channels": self.z_channels,
        }
