"""VQGAN decoder: image codes → RGB pixels.

taming-transformers' ``Decoder`` (taming/modules/diffusionmodules/model.py) behind the codebook
(``embedding``, n_embed × embed_dim) and ``post_quant_conv``, as vqgan-jax's ``VQModule.decode_code``:

    codes (n, g*g) → embedding → (n, embed_dim, g, g) → post_quant_conv → Decoder → (n, 3, R, R)
      → clip to [0, 1] (dalle-mini's pipeline does the same) → uint8 (n, R, R, 3)

With the f16 VQGAN g = 16 and R = 256.

`fast_decoder_forward` runs taming's ``Decoder`` modules (same weights and keys) with less work than its own
``forward`` on the CPU (measured on 2 AMD EPYC cores, where the 3×3 convolutions already run near the cores'
peak, so the time goes to FLOPs and memory passes): weights kept in channels-last memory (no reorder per
call), swish as one in-place ``silu`` pass instead of ``x * sigmoid(x)`` (two passes, two allocations),
residual adds in place, and each "nearest ×2 upsample + 3×3 conv" as one 2×2 conv at the low resolution
with 4× the output channels (one per output pixel parity; the 3×3 taps that land on the same low-resolution
pixel are summed beforehand): 16 instead of 36 multiply-adds per channel pair and low-resolution pixel.
"""

from __future__ import annotations

import contextlib
import io

import torch
import torch.nn.functional as F
from taming.modules.diffusionmodules.model import AttnBlock, Decoder, ResnetBlock, Upsample
from torch import nn

from generator.model.config import VQGanConfig


def _norm_swish(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """taming's ``nonlinearity(norm(x))``: swish x·σ(x) in place, one pass."""
    return F.silu(norm(x), inplace=True)


def _resnet_block(block: ResnetBlock, x: torch.Tensor) -> torch.Tensor:
    """taming ``ResnetBlock.forward`` without the time embedding (the decoder has none) and dropout (eval)."""
    h = block.conv1(_norm_swish(block.norm1, x))
    h = block.conv2(_norm_swish(block.norm2, h))
    if block.in_channels != block.out_channels:
        x = block.conv_shortcut(x) if block.use_conv_shortcut else block.nin_shortcut(x)
    return h.add_(x)  # x + h, in place in the block's fresh output


def _attn_block(block: AttnBlock, x: torch.Tensor) -> torch.Tensor:
    """taming ``AttnBlock.forward``: single-head self-attention over the g×g pixels."""
    h_ = block.norm(x)
    b, c, h, w = x.shape
    q = block.q(h_).reshape(b, c, h * w).transpose(1, 2)  # (b, hw, c)
    k = block.k(h_).reshape(b, c, h * w)  # (b, c, hw)
    v = block.v(h_).reshape(b, c, h * w)  # (b, c, hw)
    weights = torch.softmax(torch.bmm(q, k) * (int(c) ** (-0.5)), dim=2)  # (b, hw_q, hw_k)
    h_ = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w)  # (b, c, hw_q)
    return block.proj_out(h_).add_(x)


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """3×3 kernel (C_out, C_in, 3, 3) → (4·C_out, C_in, 2, 2), parity blocks (0,0), (0,1), (1,0), (1,1).

    Output row 2i+a of the 3×3 conv of the ×2 nearest upsample reads low-resolution rows i-1, i (a = 0:
    taps 0 | 1+2) or i, i+1 (a = 1: taps 0+1 | 2); columns alike. A 2×2 conv with padding 1 at the low
    resolution gives parity a's row i at its output row i+a.
    """
    row_taps = (
        torch.stack([weight[:, :, 0], weight[:, :, 1] + weight[:, :, 2]], 2),  # a = 0: (C_out, C_in, 2, 3)
        torch.stack([weight[:, :, 0] + weight[:, :, 1], weight[:, :, 2]], 2),  # a = 1
    )
    blocks = []
    for rows in row_taps:
        # b = 0, then b = 1: (C_out, C_in, 2, 2) each
        blocks.append(torch.stack([rows[..., 0], rows[..., 1] + rows[..., 2]], -1))
        blocks.append(torch.stack([rows[..., 0] + rows[..., 1], rows[..., 2]], -1))
    return torch.cat(blocks)


def _upsample_conv(upsample: Upsample, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``conv3×3(nearest×2(x))`` (n, C, H, W) → (n, C, 2H, 2W) through the 2×2 parity conv `weight`."""
    n, c, h, w = x.shape
    parities = F.conv2d(x, weight, upsample.conv.bias.repeat(4), padding=1)  # (n, 4C, H+1, W+1)
    y = torch.empty((n, c, 2 * h, 2 * w), dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    for k, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        y[:, :, a::2, b::2] = parities[:, k * c : (k + 1) * c, a : a + h, b : b + w]
    return y


def fast_decoder_forward(
    decoder: Decoder, z: torch.Tensor, upsample_weights: list[torch.Tensor]
) -> torch.Tensor:
    """taming ``Decoder.forward`` (no time embedding, not ``give_pre_end``); `upsample_weights[i]` is
    `subpixel_weight` of ``decoder.up[i].upsample.conv`` (levels 1..)."""
    h = decoder.conv_in(z)
    h = _resnet_block(decoder.mid.block_1, h)
    h = _attn_block(decoder.mid.attn_1, h)
    h = _resnet_block(decoder.mid.block_2, h)
    for i_level in reversed(range(decoder.num_resolutions)):
        up = decoder.up[i_level]
        for i_block in range(decoder.num_res_blocks + 1):
            h = _resnet_block(up.block[i_block], h)
            if len(up.attn) > 0:
                h = _attn_block(up.attn[i_block], h)
        if i_level != 0:
            h = _upsample_conv(up.upsample, upsample_weights[i_level], h)
    return decoder.conv_out(_norm_swish(decoder.norm_out, h))


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
        # Channels-last 4-D weights, as the activations: oneDNN then reorders no weight per call (same
        # values and keys; load_state_dict copies into this layout; assign=True callers convert again)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n, g*g) long → pixels (n, 3, R, R) float in [0, 1]."""
        g = self.config.grid_count
        codes = codes.clamp(0, self.config.n_embed - 1)  # the sampler never yields others; belt and braces
        z = self.embedding(codes).view(codes.shape[0], g, g, self.config.embed_dim)  # (n, g, g, c)
        # (n, c, g, g) in channels-last memory: oneDNN's convolutions run ~1.5-2× faster on the CPU
        z = z.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        z = self.post_quant_conv(z)
        if self.decoder.give_pre_end or not self.config.resamp_with_conv or self.decoder.temb_ch:
            pixels = self.decoder(z)  # shapes fast_decoder_forward does not cover: taming's own forward
        else:
            pixels = fast_decoder_forward(self.decoder, z, self._upsample_weights())
        return pixels.clamp(0.0, 1.0)

    def _upsample_weights(self) -> list[torch.Tensor]:
        """The upsample convs' 2×2 parity kernels by level (level 0 has no upsample): recomputed per call
        (~4 M weights, a few ms), so they can never be stale after a load_state_dict."""
        return [torch.empty(0)] + [
            subpixel_weight(self.decoder.up[i].upsample.conv.weight).contiguous(
                memory_format=torch.channels_last
            )
            for i in range(1, self.decoder.num_resolutions)
        ]

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
