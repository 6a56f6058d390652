"""DalleBart image-token decoder (reference: dalle-mini ``FlaxBartDecoder`` / ``FlaxBartDecoderLayer``).

    token (S,) at position (S,) → embed_tokens + embed_positions → layernorm_embedding
      → layers × [x + ln(self_attn(pre_ln(x))), x + ln(cross_attn(pre_ln(x))), x + glu(x)]
      → final_ln (bias only) → lm_head (image_vocab_size + 1 rows; we read only the real codes)

Decoding is one token per sequence per call (`forward_step`), with every sequence at its own position:
S sequences, a self-attention key/value cache of N = image_length positions per sequence written in place,
and cross-attention keys/values precomputed once per prompt (`cross_keys_values`) and stored in a shared
table that each sequence reads through a mask selecting its own prompt's T entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from generator.model import kernels
from generator.model.config import DalleBartConfig
from generator.model.layers import (
    GLU,
    Attention,
    Float32Rows,
    LayerNorm,
    Rows,
    RowsWeight,
    WeightFormat,
)


@dataclass
class AttentionCache:
    """Preallocated attention state for up to S_cap sequences and P_cap prompts (of T text tokens)."""

    self_keys: torch.Tensor  # (layers, S_cap, h, N, hd), position p of sequence s written at step p
    self_values: torch.Tensor  # (layers, S_cap, h, N, hd)
    cross_keys: torch.Tensor  # (layers, h, P_cap * T, hd), prompt p at [p*T, (p+1)*T)
    cross_values: torch.Tensor  # (layers, h, P_cap * T, hd)

    @classmethod
    def allocate(
        cls,
        config: DalleBartConfig,
        *,
        sequence_count: int,
        prompt_count: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> AttentionCache:
        h = config.decoder_attention_heads
        hd = config.d_model // h
        layers, n, t = config.decoder_layers, config.image_length, config.max_text_length
        self_shape = (layers, sequence_count, h, n, hd)
        cross_shape = (layers, h, prompt_count * t, hd)
        return cls(
            self_keys=torch.zeros(self_shape, dtype=dtype, device=device),
            self_values=torch.zeros(self_shape, dtype=dtype, device=device),
            cross_keys=torch.zeros(cross_shape, dtype=dtype, device=device),
            cross_values=torch.zeros(cross_shape, dtype=dtype, device=device),
        )


def _fused_float32(modules: tuple[nn.Linear, ...]) -> torch.Tensor:
    """The modules' weights stacked in one tensor, each module's weight rebound to its rows of it (same
    values and keys, no second copy): one product, one launch, one output copy instead of several."""
    fused = torch.cat([module.weight.detach() for module in modules])
    start = 0
    for module in modules:
        rows = module.weight.shape[0]
        module.weight = nn.Parameter(fused[start : start + rows], requires_grad=False)
        start += rows
    return fused


class StepWeights:
    """One layer's step projections, q/k/v and fc0/fc1 fused: fewer and larger reads per step.

    float32: views of the modules' own weights through `row_kernels` (exact); reduced formats: `RowsWeight`
    copies (the float32 originals are freed by `DalleBartDecoder.reduce_weights`).
    """

    def __init__(
        self,
        layer: DecoderLayer,
        weight_format: WeightFormat,
        row_kernels: kernels.RowKernels = kernels.DEFAULT,
    ) -> None:
        attn, cross, glu = layer.self_attn, layer.encoder_attn, layer.glu
        self.weight_format = weight_format
        qkv, glu_in = (attn.q_proj, attn.k_proj, attn.v_proj), (glu.fc0, glu.fc1)
        if weight_format == "float32":
            self.self_qkv: Rows = Float32Rows(_fused_float32(qkv), row_kernels)
            self.glu_in: Rows = Float32Rows(_fused_float32(glu_in), row_kernels)
            self.self_out: Rows = Float32Rows(attn.out_proj.weight, row_kernels)
            self.cross_q: Rows = Float32Rows(cross.q_proj.weight, row_kernels)
            self.cross_out: Rows = Float32Rows(cross.out_proj.weight, row_kernels)
            self.glu_out: Rows = Float32Rows(glu.fc2.weight, row_kernels)
        else:
            self.self_qkv = RowsWeight(torch.cat([m.weight for m in qkv]), weight_format)
            self.glu_in = RowsWeight(torch.cat([m.weight for m in glu_in]), weight_format)
            self.self_out = RowsWeight(attn.out_proj.weight, weight_format)
            self.cross_q = RowsWeight(cross.q_proj.weight, weight_format)
            self.cross_out = RowsWeight(cross.out_proj.weight, weight_format)
            self.glu_out = RowsWeight(glu.fc2.weight, weight_format)
        self._sources = self._weights_of(layer)

    @staticmethod
    def _weights_of(layer: DecoderLayer) -> list[torch.Tensor]:
        attn, cross, glu = layer.self_attn, layer.encoder_attn, layer.glu
        modules = (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, cross.q_proj, cross.out_proj)
        return [m.weight for m in (*modules, glu.fc0, glu.fc1, glu.fc2)]

    def is_current(self, layer: DecoderLayer) -> bool:
        """Whether these are still `layer`'s weights (a load with assign=True puts new tensors in)."""
        return all(a is b for a, b in zip(self._weights_of(layer), self._sources, strict=True))

    def all(self) -> list[Rows]:
        return [self.self_qkv, self.self_out, self.cross_q, self.cross_out, self.glu_in, self.glu_out]


class DecoderLayer(nn.Module):
    def __init__(self, config: DalleBartConfig) -> None:
        super().__init__()
        d, eps, is_scaled = config.d_model, config.layer_norm_eps, config.force_ln_scale
        heads = config.decoder_attention_heads
        self.pre_self_attn_layer_norm = LayerNorm(d, is_scaled=is_scaled, eps=eps)
        self.self_attn = Attention(d, heads)
        self.self_attn_layer_norm = LayerNorm(d, is_scaled=True, eps=eps)
        self.pre_encoder_attn_layer_norm = LayerNorm(d, is_scaled=is_scaled, eps=eps)
        self.encoder_attn = Attention(d, heads)
        self.encoder_attn_layer_norm = LayerNorm(d, is_scaled=True, eps=eps)
        self.glu = GLU(d, config.decoder_ffn_dim, is_scaled=is_scaled, eps=eps)
        self.step_weights: StepWeights | None = None  # DalleBartDecoder.prepare_step makes them

    def _glu(self, weights: StepWeights, x: torch.Tensor) -> torch.Tensor:
        """The GLU of `self.glu` through the fused step weights."""
        gate, value = weights.glu_in(self.glu.ln0(x)).chunk(2, dim=1)
        return weights.glu_out(self.glu.ln1(F.gelu(gate) * value))  # exact (erf) GELU, as flax's nn.gelu

    def forward_step(
        self,
        decoder_state: torch.Tensor,  # (S, d)
        sequence_index: torch.Tensor,  # (S,) long: 0..S-1
        positions: torch.Tensor,  # (S,) long
        self_keys: torch.Tensor,  # (S_cap, h, N, hd) this layer's cache
        self_values: torch.Tensor,
        self_mask: torch.Tensor,  # (S, 1, 1, L) bool: key position <= own position
        cross_keys: torch.Tensor,  # (1, h, PT, hd)
        cross_values: torch.Tensor,
        cross_mask: torch.Tensor,  # (1, 1, S, PT) bool: own prompt's real tokens
    ) -> torch.Tensor:
        s, key_count = decoder_state.shape[0], self_mask.shape[-1]
        weights = self.step_weights
        assert weights is not None, "call DalleBartDecoder.prepare_step first"
        attn = self.self_attn
        # Self attention: write this step's key/value at each sequence's own position, attend to 0..L-1
        residual = decoder_state
        h = self.pre_self_attn_layer_norm(decoder_state)
        q, k, v = weights.self_qkv(h).chunk(3, dim=1)
        q = q.reshape(s, attn.head_count, 1, attn.head_dim)  # (S, h, 1, hd)
        k = k.reshape(s, attn.head_count, attn.head_dim)  # (S, h, hd)
        v = v.reshape(s, attn.head_count, attn.head_dim)
        self_keys[sequence_index, :, positions] = k
        self_values[sequence_index, :, positions] = v
        h = F.scaled_dot_product_attention(
            q, self_keys[:s, :, :key_count], self_values[:s, :, :key_count], attn_mask=self_mask
        )  # (S, h, 1, hd)
        h = h.reshape(s, -1)
        h = weights.self_out(h)
        decoder_state = residual + self.self_attn_layer_norm(h)

        # Cross attention: all S queries against the shared prompt table, each masked to its prompt
        attn = self.encoder_attn
        residual = decoder_state
        h = self.pre_encoder_attn_layer_norm(decoder_state)
        q = weights.cross_q(h)
        q = q.reshape(s, attn.head_count, attn.head_dim).transpose(0, 1).unsqueeze(0)  # (1, h, S, hd)
        h = F.scaled_dot_product_attention(q, cross_keys, cross_values, attn_mask=cross_mask)  # (1, h, S, hd)
        h = h[0].transpose(0, 1).reshape(s, -1)
        h = weights.cross_out(h)
        decoder_state = residual + self.encoder_attn_layer_norm(h)

        # Feed forward
        return decoder_state + self._glu(weights, decoder_state)


class DalleBartDecoder(nn.Module):
    def __init__(self, config: DalleBartConfig) -> None:
        super().__init__()
        d = config.d_model
        self.config = config
        self.embed_scale = math.sqrt(d) if config.scale_embedding else 1.0
        self.embed_tokens = nn.Embedding(config.image_vocab_size + 1, d)  # + the start token
        self.embed_positions = nn.Embedding(config.image_length, d)
        self.layernorm_embedding = LayerNorm(d, is_scaled=True, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.final_ln = (
            LayerNorm(d, is_scaled=config.force_ln_scale, eps=config.layer_norm_eps)
            if config.use_final_ln_decoder
            else None
        )
        self.lm_head = nn.Linear(d, config.image_vocab_size + 1, bias=False)
        self.weight_format: WeightFormat = "float32"
        self.lm_rows: RowsWeight | None = None  # lm_head in the reduced format
        self.row_kernels: kernels.RowKernels | None = None  # float32's, measured by the first prepare_step
        self.lm_float32: Float32Rows | None = None  # lm_head's rows of the real codes, made by prepare_step
        self._lm_source: torch.Tensor | None = None  # the lm_head weight they were made of

    def reduce_weights(self, weight_format: WeightFormat) -> None:
        """Switch the step's weights (the layers' projections and lm_head) to `weight_format` for the CPU's
        fast decoding, in place and once: the float32 originals are freed (cross-attention keys and values,
        computed once per prompt, and the embeddings stay float32)."""
        if weight_format == self.weight_format:
            return
        if self.weight_format != "float32" or weight_format == "float32":
            raise ValueError(f"the decoder's weights are already {self.weight_format}: load the model again")
        for layer in self.decoder_layers:
            layer.step_weights = StepWeights(layer, weight_format)
            attn, cross, glu = layer.self_attn, layer.encoder_attn, layer.glu
            for module in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, cross.q_proj, cross.out_proj,
                           glu.fc0, glu.fc1, glu.fc2):  # fmt: skip
                module.weight = nn.Parameter(torch.empty(0, device=module.weight.device), requires_grad=False)
        self.lm_rows = RowsWeight(self.lm_head.weight, weight_format)
        self.lm_float32 = None
        self.lm_head.weight = nn.Parameter(
            torch.empty(0, device=self.lm_head.weight.device), requires_grad=False
        )
        self.weight_format = weight_format

    @property
    def decoder_layers(self) -> list[DecoderLayer]:
        """`layers`, typed (an nn.ModuleList of DecoderLayer; the checkpoint's key names stay `layers.N`)."""
        return cast(list[DecoderLayer], self.layers)

    def prepare_step(self) -> None:
        """Make the layers' fused step weights (float32: views of the modules' weights) and lm_head's rows
        of the real codes, or make them again if the modules' weights were replaced since; cheap when they
        are current. The first call on float32 weights times the CPU's kernels on them
        (generator/model/kernels.py)."""
        if self.row_kernels is None:
            float32 = self.weight_format == "float32"
            self.row_kernels = kernels.measure(self._step_matrices()) if float32 else kernels.DEFAULT
        for layer in self.decoder_layers:
            if layer.step_weights is None or (
                layer.step_weights.weight_format == "float32" and not layer.step_weights.is_current(layer)
            ):
                with torch.no_grad():
                    layer.step_weights = StepWeights(layer, "float32", self.row_kernels)
        if self.weight_format == "float32" and (
            self.lm_float32 is None or self._lm_source is not self.lm_head.weight
        ):
            self._lm_source = self.lm_head.weight
            codes = self.lm_head.weight.detach()[: self.config.image_vocab_size]
            self.lm_float32 = Float32Rows(codes, self.row_kernels)

    def _step_matrices(self) -> list[torch.Tensor]:
        """The float32 matrices a step reads: every layer's projections but the cross keys and values
        (computed once per prompt), and lm_head."""
        matrices = [w for layer in self.decoder_layers for w in StepWeights._weights_of(layer)]
        return [*matrices, self.lm_head.weight]

    def cross_keys_values(self, encoder_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """encoder_state (n, T, d) → keys, values (layers, n, h, T, hd): computed once per prompt."""
        keys, values = [], []
        for layer in self.decoder_layers:
            attn = layer.encoder_attn
            keys.append(attn.split_heads(attn.k_proj(encoder_state)))
            values.append(attn.split_heads(attn.v_proj(encoder_state)))
        return torch.stack(keys), torch.stack(values)

    def forward_step(
        self,
        tokens: torch.Tensor,  # (S,) long: each sequence's previous token (start token at position 0)
        positions: torch.Tensor,  # (S,) long
        cache: AttentionCache,
        self_mask: torch.Tensor,  # (S, 1, 1, L) bool
        cross_count: int,  # PT: used extent of the prompt table
        cross_mask: torch.Tensor,  # (1, 1, S, PT) bool
    ) -> torch.Tensor:
        """One decoding step for S sequences → final hidden state (S, d); caches are updated in place."""
        s = tokens.shape[0]
        sequence_index = torch.arange(s, device=tokens.device)
        x = self.embed_tokens(tokens) * self.embed_scale + self.embed_positions(positions)
        x = self.layernorm_embedding(x)
        for i, layer in enumerate(self.decoder_layers):
            x = layer.forward_step(
                x,
                sequence_index,
                positions,
                cache.self_keys[i],
                cache.self_values[i],
                self_mask,
                cache.cross_keys[i, :, :cross_count].unsqueeze(0),
                cache.cross_values[i, :, :cross_count].unsqueeze(0),
                cross_mask,
            )
        return self.final_ln(x) if self.final_ln is not None else x

    def logits(self, decoder_state: torch.Tensor, code_count: int) -> torch.Tensor:
        """(S, d) → (S, code_count): only the rows of lm_head for real image codes (start token excluded)."""
        if self.lm_rows is not None:
            return self.lm_rows(decoder_state)[:, :code_count]
        if self.lm_float32 is not None:
            return self.lm_float32(decoder_state)[:, :code_count]
        return kernels.DEFAULT(decoder_state, self.lm_head.weight[:code_count])
