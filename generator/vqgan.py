"""VQGAN decoder: image codes → RGB pixels.

taming-transformers' ``Decoder`` (taming/modules/diffusionmodules/model.py) behind the codebook
(``embedding``, n_embed × embed_dim) and ``post_quant_conv``, as vqgan-jax's ``VQModule.decode_code``:

    codes (n, g*g) → embedding → (n, embed_dim, g, g) → post_quant_conv → Decoder → (n, 3, R, R)
      → clip to [0, 1] (dalle-mini's pipeline does the same) → uint8 (n, R, R, 3)

With the f16 VQGAN g = 16 and R = 256.
"""

from __future__ import annotations

import contextlib
import io

import torch
from taming.modules.diffusionmodules.model import Decoder
from torch import nn

from generator.config import VQGanConfig


class VQGanDetokenizer(nn.Module):
    def __init__(self, config: VQGanConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.n_embed, config.embed_dim)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)
        with contextlib.redirect_stdout(io.StringIO()):  # taming prints the z shape on construction
            self.decoder = Decoder(
                ch=config.ch,
                out_ch=config.out_ch,
                ch_mult=tuple(config.ch_mult),
                num_res_blocks=config.num_res_blocks,
                attn_resolutions=tuple(config.attn_resolutions),
                dropout=0.0,
                resamp_with_conv=config.resamp_with_conv,
                in_channels=config.in_channels,
                resolution=config.resolution,
                z_channels=config.z_channels,
            )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n, g*g) long → pixels (n, 3, R, R) float in [0, 1]."""
        g = self.config.grid_count
        codes = codes.clamp(0, self.config.n_embed - 1)  # the sampler never yields others; belt and braces
        z = self.embedding(codes).view(codes.shape[0], g, g, self.config.embed_dim)  # (n, g, g, c)
        # (n, c, g, g) in channels-last memory: oneDNN's convolutions run ~1.5-2× faster on the CPU
        z = z.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        pixels = self.decoder(self.post_quant_conv(z))
        return pixels.clamp(0.0, 1.0)

    @torch.inference_mode()
    def decode_uint8(self, codes: torch.Tensor, *, batch_count: int = 4) -> torch.Tensor:
        """codes (n, g*g) → (n, R, R, 3) uint8 on the CPU, decoding `batch_count` images at a time."""
        parameter = next(self.parameters())
        images = []
        for start in range(0, codes.shape[0], batch_count):
            batch = codes[start : start + batch_count].to(parameter.device)
            pixels = self(batch).float()
            images.append((pixels * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu())
        return (
            torch.cat(images)
            if images
            else torch.empty((0, self.config.resolution, self.config.resolution, 3), dtype=torch.uint8)
        )
