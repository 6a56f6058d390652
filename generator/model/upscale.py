"""4× super-resolution of one picture with transformers' Swin2SR, tile by tile so memory stays bounded.

    upscaler = Upscaler.load("caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr")   # or a local directory
    big = upscaler.upscale(image)                     # 256 × 256 → 1024 × 1024

Why Swin2SR (the real-world BSRGAN-degradation x4 model) and not spandrel's Real-ESRGAN: it is loaded by
transformers, already a dependency, from a checkpoint in transformers' own layout with its own image
processor; spandrel imports torchvision at import time, a second torch-pinned wheel to keep in step. On
2 CPU cores with random weights at real size, Swin2SR took 12–13 s per 256 → 1024 picture in 16 tiles of
64 px (+25 MiB peak), RRDBNet (Real-ESRGAN x4) 7–12 s in 128-px tiles (+180 MiB) and 12 s whole (+800 MiB);
on a GPU both take a fraction of a second, Swin2SR's windowed attention being matmul work bfloat16 suits.
On a CPU with AVX512-BF16 or AMX, bfloat16 autocast (`precision`, IMAGINE_UPSCALER_DTYPE; auto picks it
there) took 8.4 s against float32's 16.6 s in 72-px tiles on an idle moment of this 2-core machine, 64 dB
PSNR to float32; batching tiles and bf16 weights throughout were slower. bench/pictures.py prints both
beside a 3×3 grid's render time.

Tiles of `tile` input pixels overlap by `overlap` pixels; overlapping outputs are averaged, so seams do
not show and the result does not depend on how many tiles run at once. `should_stop` is asked between
tiles (a cancelled job stops within one tile); `progress` hears the fraction done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from generator.model.checkpoints import resolve_checkpoint
from generator.model.hardware import native_bfloat16
from generator.model.hf_checkpoint import (
    SAFETENSORS_FILE,
    check_hf_directory,
    load_strict,
    quiet_transformers,
)

logger = logging.getLogger(__name__)

SWIN2SR = "caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr"
PROCESSOR_FILES = ("preprocessor_config.json",)
UPSCALER_FILES = ("config.json", SAFETENSORS_FILE, *PROCESSOR_FILES)
# Input pixels per tile side, and shared by neighbours: 72 = 8 × 9 (whole attention windows) covers 256 px
# in 4 × 4 tiles, 1.27× the pixels of the picture (64-px tiles with the same overlap take 5 × 5, 1.56×);
# the cost is linear in pixels (windowed attention), the memory bounded by one tile.
TILE = 72
OVERLAP = 8
Precision = Literal["auto", "float32", "bfloat16"]


class UpscaleStopped(Exception):
    """`should_stop` said stop (the job was cancelled or its lease lost) between two tiles."""


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of `tile` pixels covering `size`, neighbours sharing at least `overlap`."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return [*starts, size - tile]


class Upscaler:
    def __init__(
        self,
        model: torch.nn.Module,
        processor: object,
        directory: Path | None,
        *,
        precision: Precision = "auto",
        tile: int = TILE,
        overlap: int = OVERLAP,
    ) -> None:
        self.model = model
        self.tile, self.overlap = tile, overlap
        self.processor = processor
        self.directory = directory
        self.scale = int(getattr(model.config, "upscale", 4))
        device = next(model.parameters()).device
        if precision == "auto":
            precision = "bfloat16" if native_bfloat16(device) else "float32"
        # bfloat16 as autocast over float32 weights: the matmuls run in bf16, the norms and softmax stay
        # fp32 (bf16 weights throughout measured slower on CPU and lose more; bench/pictures.py)
        self.precision: Precision = precision

    @classmethod
    def load(
        cls,
        spec: str | Path = SWIN2SR,
        *,
        revision: str | None = None,
        cache_dir: Path | None = None,
        device: torch.device | str = "cpu",
        local_files_only: bool = False,
        precision: Precision = "auto",
        tile: int = TILE,
        overlap: int = OVERLAP,
    ) -> Upscaler:
        from transformers import AutoImageProcessor, Swin2SRForImageSuperResolution

        directory = resolve_checkpoint(
            spec,
            files=UPSCALER_FILES,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        check_hf_directory(directory, model_type="swin2sr", what="Swin2SR", files=PROCESSOR_FILES)
        with quiet_transformers():
            model = load_strict(Swin2SRForImageSuperResolution, directory, what="Swin2SR", device=device)
            processor = AutoImageProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                str(directory), local_files_only=True
            )
        logger.info("loaded Swin2SR x%s from %s", model.config.upscale, directory)
        return cls(model, processor, directory, precision=precision, tile=tile, overlap=overlap)

    @torch.inference_mode()
    def upscale(
        self,
        image: Image.Image,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Image.Image:
        """`image` `scale`× larger, drawn tile by tile (raises `UpscaleStopped` when told to stop); `tile`
        and `overlap` default to the upscaler's own."""
        tile = self.tile if tile is None else tile
        overlap = self.overlap if overlap is None else overlap
        # the checkpoint's processor rescales to [0, 1]; the model pads each tile to its window itself
        pixels = self.processor(  # type: ignore[operator]
            images=image.convert("RGB"), do_pad=False, return_tensors="pt"
        )["pixel_values"]
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        _, _, height, width = pixels.shape
        s = self.scale
        total = torch.zeros(3, height * s, width * s)
        weight = torch.zeros(1, height * s, width * s)
        boxes = [
            (y, x) for y in tile_starts(height, tile, overlap) for x in tile_starts(width, tile, overlap)
        ]
        for done, (y, x) in enumerate(boxes):
            if should_stop is not None and should_stop():
                raise UpscaleStopped
            piece = pixels[:, :, y : y + tile, x : x + tile].to(device=device, dtype=dtype)
            with self._autocast(device):
                out = self.model(pixel_values=piece).reconstruction[0].float().cpu()
            h, w = out.shape[-2:]
            total[:, y * s : y * s + h, x * s : x * s + w] += out
            weight[:, y * s : y * s + h, x * s : x * s + w] += 1.0
            if progress is not None:
                progress((done + 1) / len(boxes))
        result = (total / weight).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
        return Image.fromarray(np.ascontiguousarray(result.permute(1, 2, 0).numpy()), mode="RGB")

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        if self.precision == "bfloat16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()
