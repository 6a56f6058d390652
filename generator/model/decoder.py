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

from generator.model.config import DalleBartConfig
from generator.model.layers import GLU, Attention, LayerNorm, linear_rows, project


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
        attn = self.self_attn
        # Self attention: write this step's key/value at each sequence's own position, attend to 0..L-1
        residual = decoder_state
        h = self.pre_self_attn_layer_norm(decoder_state)
        q = project(attn.q_proj, h).reshape(s, attn.head_count, 1, attn.head_dim)  # (S, h, 1, hd)
        k = project(attn.k_proj, h).reshape(s, attn.head_count, attn.head_dim)  # (S, h, hd)
        v = project(attn.v_proj, h).reshape(s, attn.head_count, attn.head_dim)
        self_keys[sequence_index, :, positions] = k
        self_values[sequence_index, :, positions] = v
        h = F.scaled_dot_product_attention(
            q, self_keys[:s, :, :key_count], self_values[:s, :, :key_count], attn_mask=self_mask
        )  # (S, h, 1, hd)
        h = project(attn.out_proj, h.reshape(s, -1))
        decoder_state = residual + self.self_attn_layer_norm(h)

        # Cross attention: all S queries against the shared prompt table, each masked to its prompt
        attn = self.encoder_attn
        residual = decoder_state
        h = self.pre_encoder_attn_layer_norm(decoder_state)
        q = (
            project(attn.q_proj, h).reshape(s, attn.head_count, attn.head_dim).transpose(0, 1).unsqueeze(0)
        )  # (1, h, S, hd)
        h = F.scaled_dot_product_attention(q, cross_keys, cross_values, attn_mask=cross_mask)  # (1, h, S, hd)
        h = project(attn.out_proj, h[0].transpose(0, 1).reshape(s, -1))
        decoder_state = residual + self.encoder_attn_layer_norm(h)

        # Feed forward
        return decoder_state + self.glu(decoder_state)


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

    @property
    def decoder_layers(self) -> list[DecoderLayer]:
        """`layers`, typed (an nn.ModuleList of DecoderLayer; the checkpoint's key names stay `layers.N`)."""
        return cast(list[DecoderLayer], self.layers)

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
        return linear_rows(decoder_state, self.lm_head.weight[:code_count])
