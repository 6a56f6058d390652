"""DalleBart text encoder (reference: dalle-mini ``FlaxBartEncoder`` / ``FlaxBartEncoderLayer``).

tokens (n, T) → embed_tokens + embed_positions → layernorm_embedding
  → layers × [x + ln(self_attn(pre_ln(x))), x + glu(x)] → final_ln (bias only) → (n, T, d)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from generator.model.config import DalleBartConfig
from generator.model.layers import GLU, Attention, LayerNorm


class EncoderLayer(nn.Module):
    def __init__(self, config: DalleBartConfig) -> None:
        super().__init__()
        d, eps, is_scaled = config.d_model, config.layer_norm_eps, config.force_ln_scale
        self.pre_self_attn_layer_norm = LayerNorm(d, is_scaled=is_scaled, eps=eps)
        self.self_attn = Attention(d, config.encoder_attention_heads)
        self.self_attn_layer_norm = LayerNorm(d, is_scaled=True, eps=eps)
        self.glu = GLU(d, config.encoder_ffn_dim, is_scaled=is_scaled, eps=eps)

    def forward(self, encoder_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """encoder_state (n, T, d); attention_mask (n, 1, 1, T) bool, True where a key is a real token."""
        attn = self.self_attn
        # Self attention
        residual = encoder_state
        h = self.pre_self_attn_layer_norm(encoder_state)
        q, k, v = (
            attn.split_heads(proj(h)) for proj in (attn.q_proj, attn.k_proj, attn.v_proj)
        )  # (n, h, T, hd)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        h = attn.out_proj(attn.merge_heads(h))
        encoder_state = residual + self.self_attn_layer_norm(h)
        # Feed forward
        return encoder_state + self.glu(encoder_state)


class DalleBartEncoder(nn.Module):
    def __init__(self, config: DalleBartConfig) -> None:
        super().__init__()
        d = config.d_model
        self.embed_scale = math.sqrt(d) if config.scale_embedding else 1.0
        self.embed_tokens = nn.Embedding(config.encoder_vocab_size, d)
        self.embed_positions = nn.Embedding(config.max_text_length, d)
        self.layernorm_embedding = LayerNorm(d, is_scaled=True, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.final_ln = (
            LayerNorm(d, is_scaled=config.force_ln_scale, eps=config.layer_norm_eps)
            if config.use_final_ln_encoder
            else None
        )

    def forward(self, text_tokens: torch.Tensor, is_token: torch.Tensor) -> torch.Tensor:
        """text_tokens (n, T) long; is_token (n, T) bool, False at padding → encoder_state (n, T, d)."""
        positions = torch.arange(text_tokens.shape[1], device=text_tokens.device)
        x = self.embed_tokens(text_tokens) * self.embed_scale + self.embed_positions(positions)
        x = self.layernorm_embedding(x)
        attention_mask = is_token[:, None, None, :]  # (n, 1, 1, T): every query sees the real tokens
        for layer in self.layers:
            x = layer(x, attention_mask)
        return self.final_ln(x) if self.final_ln is not None else x
