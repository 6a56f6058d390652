"""Tiny random checkpoints in the exact published layout, for tests and the offline "try it" path.

``make_tiny_checkpoints(root)`` writes two directories:

- ``root/dalle``: ``config.json`` (every key of dalle-mini's published config), ``flax_model.msgpack``
  (written with msgpack as flax's ``msgpack_serialize`` does, params nested as in the published checkpoint:
  ``model/{encoder,decoder}/layers/FlaxBart{Encoder,Decoder}Layers/...`` scanned, or ``..._<i>`` unscanned,
  and ``lm_head``), and the tokenizer files of a byte-level BPE trained here with `tokenizers`
  (``vocab.json``, ``merges.txt``, ``tokenizer.json``, ``special_tokens_map.json``, ``tokenizer_config.json``)
  plus an ``enwiki-words-frequency.txt``;
- ``root/vqgan``: ``config.json`` + ``flax_model.msgpack`` as in ``dalle-mini/vqgan_imagenet_f16_16384``.

The flax trees are built from flax's own naming rules (``LayerNorm_0``, ``Dense_2``, ``up_3/block_0``),
independently of `generator.model.checkpoints`, so loading them tests the converter.

The tiny VQGAN keeps the f16 code grid (16 × 16 = 256 codes per image, the sequence the decoder samples)
but has fewer channels and levels, so its images are ``16 * 2**(len(ch_mult) - 1)`` pixels square
(32 by default) instead of 256; the code path is the production one, driven by config.json.

CLI: ``python -m generator.testing make-tiny DIR [--unscanned] [--fp16] [--seed N]``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from generator.model.config import DalleBartConfig, VQGanConfig
from generator.model.flax_format import MAX_CHUNK_BYTES, write_flax_msgpack
from generator.model.tokenizer_files import write_tiny_tokenizer, write_tiny_word_frequency
from jobs.hints import command_hint
from jobs.settings import Settings, load_settings

TINY_DALLE = DalleBartConfig(
    d_model=32,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=48,
    decoder_ffn_dim=48,
    encoder_vocab_size=0,  # set to the trained tokenizer's size
    image_vocab_size=64,
    max_text_length=64,
    image_length=256,
    decoder_start_token_id=64,
    normalize_text=True,
)
TINY_VQGAN = VQGanConfig(
    ch=32,
    out_ch=3,
    in_channels=3,
    num_res_blocks=1,
    resolution=32,
    z_channels=8,
    ch_mult=(1, 1),
    attn_resolutions=(16,),
    n_embed=64,
    embed_dim=8,
)

Params = dict[str, Any]  # flax params: nested dicts of arrays, as flax serializes them


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (rng.standard_normal(shape) * std).astype(np.float32)


def _layer_norm(rng: np.random.Generator, n: int, *, is_scaled: bool) -> dict[str, np.ndarray]:
    params = {"bias": _normal(rng, (n,), 0.1)}
    if is_scaled:
        params["scale"] = (1.0 + _normal(rng, (n,), 0.1)).astype(np.float32)
    return params


def _dense(
    rng: np.random.Generator, n_in: int, n_out: int, *, layer_count: int | None
) -> dict[str, np.ndarray]:
    shape = (n_in, n_out) if layer_count is None else (layer_count, n_in, n_out)
    return {"kernel": _normal(rng, shape, n_in**-0.5)}


def _stacked(make: Callable[[], Params], layer_count: int) -> Params:
    """One layer's param dict with a leading layer axis on every leaf (flax nn.scan's layout)."""
    layers = [make() for _ in range(layer_count)]

    def stack(nodes: list[Any]) -> Params | np.ndarray:
        if isinstance(nodes[0], dict):
            return {k: stack([n[k] for n in nodes]) for k in nodes[0]}
        return np.stack(nodes)

    stacked = stack(layers)
    assert isinstance(stacked, dict)  # layers are dicts, so the stack is one
    return stacked


def dalle_bart_flax_params(config: DalleBartConfig, *, seed: int = 0, is_scanned: bool = True) -> Params:
    """Random params nested as dalle-mini's DalleBart stores them (``params`` without the top key)."""
    rng = np.random.default_rng(seed)
    d = config.d_model
    bias_only = config.force_ln_scale  # pre-norms and GLU norms: scale only if force_ln_scale

    def attention() -> Params:
        return {
            name: _dense(rng, d, d, layer_count=None) for name in ("q_proj", "k_proj", "v_proj", "out_proj")
        }

    def glu(ffn: int) -> Params:
        return {
            "LayerNorm_0": _layer_norm(rng, d, is_scaled=bias_only),
            "Dense_0": _dense(rng, d, ffn, layer_count=None),
            "Dense_1": _dense(rng, d, ffn, layer_count=None),
            "LayerNorm_1": _layer_norm(rng, ffn, is_scaled=bias_only),
            "Dense_2": _dense(rng, ffn, d, layer_count=None),
        }

    def encoder_layer() -> Params:
        return {
            "LayerNorm_0": _layer_norm(rng, d, is_scaled=bias_only),
            "FlaxBartAttention_0": attention(),
            "LayerNorm_1": _layer_norm(rng, d, is_scaled=True),
            "GLU_0": glu(config.encoder_ffn_dim),
        }

    def decoder_layer() -> Params:
        return {
            "LayerNorm_0": _layer_norm(rng, d, is_scaled=bias_only),
            "FlaxBartAttention_0": attention(),
            "LayerNorm_1": _layer_norm(rng, d, is_scaled=True),
            "LayerNorm_2": _layer_norm(rng, d, is_scaled=bias_only),
            "FlaxBartAttention_1": attention(),
            "LayerNorm_3": _layer_norm(rng, d, is_scaled=True),
            "GLU_0": glu(config.decoder_ffn_dim),
        }

    def stack(name: str, make: Callable[[], Params], count: int) -> Params:
        if is_scanned:
            return {f"{name}s": _stacked(make, count)}
        return {f"{name}_{i}": make() for i in range(count)}

    def codec(
        vocab: int, length: int, name: str, make: Callable[[], Params], count: int, has_final_ln: bool
    ) -> Params:
        params = {
            "embed_tokens": {"embedding": _normal(rng, (vocab, d), 1.0)},
            "embed_positions": {"embedding": _normal(rng, (length, d), 1.0)},
            "layernorm_embedding": _layer_norm(rng, d, is_scaled=True),
            "layers": stack(name, make, count),
        }
        if has_final_ln:
            params["final_ln"] = _layer_norm(rng, d, is_scaled=bias_only)
        return params

    return {
        "model": {
            "encoder": codec(
                config.encoder_vocab_size,
                config.max_text_length,
                "FlaxBartEncoderLayer",
                encoder_layer,
                config.encoder_layers,
                config.use_final_ln_encoder,
            ),
            "decoder": codec(
                config.image_vocab_size + 1,
                config.image_length,
                "FlaxBartDecoderLayer",
                decoder_layer,
                config.decoder_layers,
                config.use_final_ln_decoder,
            ),
        },
        "lm_head": _dense(rng, d, config.image_vocab_size + 1, layer_count=None),
    }


def vqgan_flax_params(config: VQGanConfig, *, seed: int = 0) -> Params:
    """Random params nested as vqgan-jax's VQModel stores them (NHWC conv kernels (kh, kw, in, out))."""
    rng = np.random.default_rng(seed)

    def conv(n_in: int, n_out: int, size: int) -> dict[str, np.ndarray]:
        return {
            "kernel": _normal(rng, (size, size, n_in, n_out), (n_in * size * size) ** -0.5),
            "bias": _normal(rng, (n_out,), 0.05),
        }

    def norm(n: int) -> dict[str, np.ndarray]:
        return _layer_norm(rng, n, is_scaled=True)

    def resnet(n_in: int, n_out: int) -> Params:
        block = {
            "norm1": norm(n_in),
            "conv1": conv(n_in, n_out, 3),
            "norm2": norm(n_out),
            "conv2": conv(n_out, n_out, 3),
        }
        if n_in != n_out:
            block["nin_shortcut"] = conv(n_in, n_out, 1)
        return block

    def attention(n: int) -> Params:
        return {
            "norm": norm(n),
            "q": conv(n, n, 1),
            "k": conv(n, n, 1),
            "v": conv(n, n, 1),
            "proj_out": conv(n, n, 1),
        }

    ch, mult, levels = config.ch, config.ch_mult, len(config.ch_mult)
    top = ch * mult[-1]
    decoder: Params = {
        "conv_in": conv(config.z_channels, top, 3),
        "mid": {"block_1": resnet(top, top), "attn_1": attention(top), "block_2": resnet(top, top)},
    }
    for level in range(levels):
        block_in = ch * (mult[level + 1] if level < levels - 1 else mult[-1])
        block_out = ch * mult[level]
        resolution = config.resolution // 2**level
        up: Params = {}
        for j in range(config.num_res_blocks + 1):
            up[f"block_{j}"] = resnet(block_in if j == 0 else block_out, block_out)
            if resolution in config.attn_resolutions:
                up[f"attn_{j}"] = attention(block_out)
        if level != 0:
            up["upsample"] = {"conv": conv(block_out, block_out, 3)}
        decoder[f"up_{level}"] = up
    decoder["norm_out"] = norm(ch * mult[0])
    decoder["conv_out"] = conv(ch * mult[0], config.out_ch, 3)
    return {
        # a stub of the image → codes half, which the loader must skip (the published file has all of it)
        "encoder": {"conv_in": conv(config.in_channels, ch, 3), "conv_out": conv(top, config.z_channels, 3)},
        "quant_conv": conv(config.z_channels, config.embed_dim, 1),
        "quantize": {"embedding": {"embedding": _normal(rng, (config.n_embed, config.embed_dim), 1.0)}},
        "post_quant_conv": conv(config.embed_dim, config.z_channels, 1),
        "decoder": decoder,
    }


def _cast(tree: Params, dtype: np.dtype[Any]) -> Params:
    return {k: _cast(v, dtype) if isinstance(v, dict) else v.astype(dtype) for k, v in tree.items()}


def make_tiny_checkpoints(
    root: Path,
    *,
    seed: int = 0,
    is_scanned: bool = True,
    dtype: str = "float32",
    chunk_bytes: int = MAX_CHUNK_BYTES,
    dalle_config: DalleBartConfig = TINY_DALLE,
    vqgan_config: VQGanConfig = TINY_VQGAN,
    has_word_frequencies: bool = True,
) -> tuple[Path, Path]:
    """Write ``root/dalle`` and ``root/vqgan``; returns both directories.

    `dtype` is the stored dtype ("float32" or "float16", as the fp16 mega checkpoint); `chunk_bytes` below
    flax's 2**30 makes large arrays chunked as flax does for arrays over 1 GiB.
    """
    dalle_dir, vqgan_dir = root / "dalle", root / "vqgan"
    dalle_dir.mkdir(parents=True, exist_ok=True)
    vqgan_dir.mkdir(parents=True, exist_ok=True)

    write_tiny_tokenizer(dalle_dir)
    vocab_size = len(json.loads((dalle_dir / "vocab.json").read_text(encoding="utf-8")))
    if dalle_config.encoder_vocab_size == 0:
        dalle_config = replace(dalle_config, encoder_vocab_size=vocab_size)
    dalle_config = replace(dalle_config, use_scan=is_scanned)
    (dalle_dir / "config.json").write_text(json.dumps(dalle_config.to_json_dict(), indent=2))
    params = _cast(dalle_bart_flax_params(dalle_config, seed=seed, is_scanned=is_scanned), np.dtype(dtype))
    write_flax_msgpack(dalle_dir / "flax_model.msgpack", params, chunk_bytes=chunk_bytes)
    if has_word_frequencies:
        write_tiny_word_frequency(dalle_dir)

    (vqgan_dir / "config.json").write_text(json.dumps(vqgan_config.to_json_dict(), indent=2))
    vq_params = _cast(vqgan_flax_params(vqgan_config, seed=seed + 1), np.dtype(dtype))
    write_flax_msgpack(vqgan_dir / "flax_model.msgpack", vq_params, chunk_bytes=chunk_bytes)
    make_tiny_clip(root / "clip", seed=seed + 2)
    make_tiny_upscaler(root / "upscaler", seed=seed + 3)
    return dalle_dir, vqgan_dir


def tiny_extras(dalle_dir: Path) -> tuple[Path, Path]:
    """The tiny CLIP and Swin2SR directories `make_tiny_checkpoints` wrote beside ``dalle_dir``."""
    return dalle_dir.parent / "clip", dalle_dir.parent / "upscaler"


def tiny_settings(data_dir: Path, tiny: tuple[Path, Path], **overrides: object) -> Settings:
    """Settings of a generator on the tiny checkpoints (DalleBart, VQGAN) and their CLIP and Swin2SR."""
    clip, upscaler = tiny_extras(tiny[0])
    paths: dict[str, object] = {
        "model_dir": tiny[0],
        "vqgan_dir": tiny[1],
        "clip_dir": clip,
        "upscaler_dir": upscaler,
    }
    return load_settings(None, data_dir=data_dir, **{**paths, **overrides})


def _clip_byte_vocab() -> dict[str, int]:
    """CLIP's vocabulary without merges: every byte (as GPT-2's printable stand-ins), with and without
    CLIP's end-of-word mark, then the two special tokens: the first 512 + 2 entries of the real one."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}


def make_tiny_clip(directory: Path, *, seed: int = 0) -> Path:
    """A tiny random CLIP saved by transformers (`save_pretrained`), with its processor: the layout of
    ``openai/clip-vit-base-patch32`` (config.json, model.safetensors, preprocessor and tokenizer files)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    vocab = _clip_byte_vocab()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(str(directory))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    # saved one by one, as the published repository holds them (preprocessor_config.json, tokenizer.json)
    images.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


# The architecture of caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr's config.json that is not its size
# (its size: embed_dim 180, six stages of depth 6 and 6 heads)
SWIN2SR_X4_LAYOUT: dict[str, Any] = {
    "window_size": 8,
    "mlp_ratio": 2.0,
    "upscale": 4,
    "image_size": 64,
    "upsampler": "nearest+conv",
    "resi_connection": "1conv",
}


def make_tiny_upscaler(directory: Path, *, seed: int = 0, stages: int = 2) -> Path:
    """A tiny random Swin2SR x4 saved by transformers, in the layout of
    ``caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr`` (its upsampler, window and processor); more
    `stages` make it slower (a test that must catch it drawing)."""
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor

    config = Swin2SRConfig(
        embed_dim=16, depths=[1] * stages, num_heads=[2] * stages, num_channels_out=3, **SWIN2SR_X4_LAYOUT
    )
    torch.manual_seed(seed)
    Swin2SRForImageSuperResolution(config).save_pretrained(str(directory))
    Swin2SRImageProcessor(
        do_rescale=True, rescale_factor=1 / 255, do_pad=True, size_divisor=8
    ).save_pretrained(str(directory))
    return directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m generator.testing", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser(
        "make-tiny", help="write tiny random checkpoints (DIR/dalle, DIR/vqgan, DIR/clip, DIR/upscaler)"
    )
    make.add_argument("directory", type=Path)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--unscanned", action="store_true", help="per-layer keys instead of a scanned stack")
    make.add_argument(
        "--fp16", action="store_true", help="store float16 weights (as dalle-mega's checkpoint)"
    )
    args = parser.parse_args(argv)
    dalle_dir, vqgan_dir = make_tiny_checkpoints(
        args.directory,
        seed=args.seed,
        is_scanned=not args.unscanned,
        dtype="float16" if args.fp16 else "float32",
    )
    print(f"DalleBart: {dalle_dir}\nVQGAN:     {vqgan_dir}")
    python = command_hint("python")
    print(f"try: {python} -m generator render 'a cat' --model {dalle_dir} --vqgan {vqgan_dir} --out grid.png")


if __name__ == "__main__":
    main()
