"""Exactness: our DalleBart and VQGAN against min-dalle's torch classes on the same random weights.

The weights are the flax params `generator.testing` writes; min-dalle gets them through its own
conversion rules (min-dalle's load_params: ``LayerNorm_0`` → ``pre_self_attn_layer_norm``, kernels
transposed, scanned stacks split, bias-only norms given a unit scale), ours through the production loader.
min-dalle's differences are handled here: it hard-codes 16383 as the start token (we pass the config's),
encodes exactly 2 rows (empty prompt, prompt), and orders its decoder batch [unconditional, conditional].
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from min_dalle.models import DalleBartDecoder, DalleBartEncoder, VQGanDetokenizer

from generator.model.checkpoints import vqgan_state_from_flax
from generator.model.config import DalleBartConfig, VQGanConfig
from generator.model.dalle import DalleMini
from generator.model.sampler import RowRequest, SamplingSettings
from generator.model.vqgan import VQGanDetokenizer as OurDetokenizer
from generator.testing import dalle_bart_flax_params, vqgan_flax_params

TOLERANCE = 1e-4
MIN_DALLE_LAYER = {
    "LayerNorm_0": "pre_self_attn_layer_norm",
    "LayerNorm_1": "self_attn_layer_norm",
    "FlaxBartAttention_0": "self_attn",
    "LayerNorm_2": "pre_encoder_attn_layer_norm",
    "LayerNorm_3": "encoder_attn_layer_norm",
    "FlaxBartAttention_1": "encoder_attn",
    "GLU_0": "glu",
}
MIN_DALLE_GLU = {
    "LayerNorm_0": "ln0",
    "LayerNorm_1": "ln1",
    "Dense_0": "fc0",
    "Dense_1": "fc1",
    "Dense_2": "fc2",
}


def _flat(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else key
        out.update(_flat(value, name) if isinstance(value, dict) else {name: value})
    return out


def min_dalle_state(params: dict, codec: str, layer_count: int) -> dict[str, torch.Tensor]:
    """min-dalle's conversion of one codec of the flax params (scanned layout)."""
    tree = dict(params["model"][codec])
    layers = tree.pop("layers")[f"FlaxBart{codec.title()}Layers"]
    state: dict[str, torch.Tensor] = {}
    for key, value in _flat(tree).items():
        module, leaf = key.rsplit(".", 1)
        state[f"{module}.{'bias' if leaf == 'bias' else 'weight'}"] = torch.tensor(value)
    for key, value in _flat(layers).items():
        parts = key.split(".")
        parts[0] = MIN_DALLE_LAYER[parts[0]]
        if parts[0] == "glu":
            parts[1] = MIN_DALLE_GLU[parts[1]]
        leaf = parts[-1]
        for i in range(layer_count):
            tensor = torch.tensor(value[i])
            if leaf == "kernel":
                tensor = tensor.T
            name = ".".join([*parts[:-1], "bias" if leaf == "bias" else "weight"])
            state[f"layers.{i}.{name}"] = tensor
    if codec == "decoder":
        state["lm_head.weight"] = torch.tensor(params["lm_head"]["kernel"]).T
    return state


def load_min_dalle(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = module.state_dict()
    for key, value in expected.items():  # bias-only norms: min-dalle's LayerNorm has a scale, set it to 1
        if key not in state and re.search(r"(layer_norm|ln\d|final_ln)\.weight$", key):
            state[key] = torch.ones_like(value)
    module.load_state_dict(state, strict=True)


@pytest.fixture(scope="module")
def reference(tiny_model: DalleMini) -> tuple[DalleBartEncoder, DalleBartDecoder]:
    config: DalleBartConfig = tiny_model.config
    params = dalle_bart_flax_params(
        config, seed=0, is_scanned=True
    )  # what make_tiny_checkpoints(seed=0) wrote
    encoder = DalleBartEncoder(
        layer_count=config.encoder_layers,
        embed_count=config.d_model,
        attention_head_count=config.encoder_attention_heads,
        text_vocab_count=config.encoder_vocab_size,
        text_token_count=config.max_text_length,
        glu_embed_count=config.encoder_ffn_dim,
        device="cpu",
    )
    decoder = DalleBartDecoder(
        image_vocab_count=config.image_vocab_size,
        embed_count=config.d_model,
        attention_head_count=config.decoder_attention_heads,
        glu_embed_count=config.decoder_ffn_dim,
        layer_count=config.decoder_layers,
        device="cpu",
    )
    load_min_dalle(encoder, min_dalle_state(params, "encoder", config.encoder_layers))
    load_min_dalle(decoder, min_dalle_state(params, "decoder", config.decoder_layers))
    return encoder.eval(), decoder.eval()


@torch.inference_mode()
def test_encoder_matches_min_dalle(tiny_model: DalleMini, reference: tuple) -> None:
    encoder, _ = reference
    tokenizer = tiny_model.tokenizer
    assert tokenizer.pad_token_id == 1  # min-dalle masks token id 1
    text = torch.cat(
        [tokenizer.encode_unconditional(), tokenizer.encode(["a painting of a fox in the snow"])]
    )
    theirs = encoder(text)
    ours = tiny_model.bart.encoder(text, text != tokenizer.pad_token_id)
    torch.testing.assert_close(ours, theirs, atol=TOLERANCE, rtol=0)


@torch.inference_mode()
def test_decoder_logits_match_min_dalle_at_every_step(tiny_model: DalleMini, reference: tuple) -> None:
    """Teacher-forced through all 256 positions: the conditional (guidance 1) and unconditional
    (guidance 0) logits of our cached step-wise decoder equal min-dalle's, step by step."""
    encoder, decoder = reference
    config, tokenizer = tiny_model.config, tiny_model.tokenizer
    codes = torch.randint(
        0, tiny_model.code_count, (config.image_length,), generator=torch.Generator().manual_seed(1)
    )
    text = torch.cat([tokenizer.encode_unconditional(), tokenizer.encode(["an astronaut riding a horse"])])

    sampler = tiny_model.new_sampler(capacity=2)
    sampler.add_rows(
        text[1:],
        [
            RowRequest("cond", 0, SamplingSettings(seed=0, guidance_scale=1.0), prefix=codes),
            RowRequest("uncond", 0, SamplingSettings(seed=0, guidance_scale=0.0), prefix=codes),
        ],
    )
    encoder_state = encoder(text)  # [unconditional, conditional], as min-dalle orders them
    attention_mask = text.not_equal(1)[:, None, None, :]
    attention_state = torch.zeros((config.decoder_layers, 4, config.image_length, config.d_model))
    previous = torch.tensor([[config.decoder_start_token_id]])  # min-dalle would use 16383
    worst = 0.0
    for i in range(config.image_length):
        logits, attention_state = decoder(
            attention_mask=attention_mask,
            encoder_state=encoder_state,
            attention_state=attention_state,
            prev_tokens=previous,
            token_index=torch.tensor([i]),
        )
        theirs = logits[:, -1, : tiny_model.code_count]  # (2, codes): unconditional, conditional
        ours = sampler.next_logits()  # rows in slot order: cond, uncond
        worst = max(worst, (ours[0] - theirs[1]).abs().max().item(), (ours[1] - theirs[0]).abs().max().item())
        finished = sampler.step()
        previous = codes[i].view(1, 1)
    assert worst < TOLERANCE
    assert {row.key for row in finished} == {"cond", "uncond"}
    assert all(torch.equal(row.tokens, codes) for row in finished)


@pytest.mark.parametrize("config", [VQGanConfig()], ids=["f16-16384"])
@torch.inference_mode()
def test_vqgan_decode_matches_min_dalle(config: VQGanConfig) -> None:
    """Full-size published VQGAN shapes (min-dalle hard-codes them), random weights, one image."""
    params = vqgan_flax_params(config, seed=3)
    flat = {k.replace(".", "/"): torch.tensor(v) for k, v in _flat(params).items()}
    ours = OurDetokenizer(config)
    ours.load_state_dict(vqgan_state_from_flax(flat), strict=True)

    theirs_state = {}  # min-dalle load_params' VQGAN rules
    for key, value in _flat(params).items():
        if key.split(".")[0] in ("encoder", "quant_conv"):
            continue
        name = key
        if "up" in key:
            name = key.replace("_", ".").replace("proj.out", "proj_out").replace("nin.short", "nin_short")
        tensor = torch.tensor(value)
        if name.endswith("kernel"):
            name, tensor = name[: -len("kernel")] + "weight", tensor.permute(3, 2, 0, 1)
        name = name.replace("scale", "weight")
        theirs_state[name] = tensor
    theirs_state["embedding.weight"] = theirs_state.pop("quantize.embedding.embedding")
    theirs = VQGanDetokenizer()
    theirs.load_state_dict(theirs_state, strict=True)

    codes = torch.randint(0, config.n_embed, (1, 256), generator=torch.Generator().manual_seed(2))
    expected = theirs(False, codes) / 255  # min-dalle: a 1×1 grid (256, 256, 3) in [0, 255]
    actual = ours(codes)[0].permute(1, 2, 0)
    torch.testing.assert_close(actual, expected, atol=TOLERANCE, rtol=0)


def test_tiny_checkpoint_round_trips_through_the_files(tiny_checkpoints: tuple[Path, Path]) -> None:
    """The reference fixture regenerates the params from the seed: they must be what is on disk."""
    from generator.model.flax_format import read_flax_msgpack

    on_disk = read_flax_msgpack(tiny_checkpoints[0] / "flax_model.msgpack")
    config = DalleBartConfig.from_directory(tiny_checkpoints[0])
    regenerated = _flat(dalle_bart_flax_params(config, seed=0, is_scanned=True))
    assert set(on_disk) == {k.replace(".", "/") for k in regenerated}
    for key, value in regenerated.items():
        assert np.array_equal(on_disk[key.replace(".", "/")].numpy(), value)
