"""Previews of a grid being drawn: the VQGAN decodes the code rows drawn so far, the rows not yet drawn
are a neutral grey, and the images go side by side at `PREVIEW_SIDE` pixels, small enough for a chat edit.

The render loop makes one when a job's rows pass each quarter of the 256 codes (64, 128 and 192 drawn),
off the loop's path (in a thread, between steps), and hands it to the deliverer, whose progress edits carry
the latest one at its usual pace (`generator/delivery.py`). A decode costs about 1.3 s per image on a CPU
and shares its cores with the steps (bench/pictures.py: a 3×3 grid's 256 steps took +106 to +123 %
with previews on, on 2 cores, against a 5 % budget), so previews are on by default only on a GPU
(`IMAGINE_PREVIEWS`).
"""

from __future__ import annotations

import math

import torch
from PIL import Image

from generator.engine import Engine
from generator.model.grid import make_grid, png_bytes

QUARTERS = 4  # previews at 1/4, 2/4 and 3/4 of the codes drawn
PREVIEW_SIDE = 128  # pixels per image in a preview
NEUTRAL = (128, 128, 128)  # the rows not drawn yet


def quarter(drawn: int, image_length: int) -> int:
    """How many quarters of the codes are drawn (0 to 4)."""
    return drawn * QUARTERS // image_length


def preview_png(engine: Engine, partial: list[tuple[torch.Tensor, int]]) -> bytes:
    """(codes so far, how many) per image → a small grid PNG; undrawn code rows shown as neutral fill."""
    tokens = torch.stack([codes for codes, _ in partial])
    images = engine.decode(tokens)
    side = math.isqrt(tokens.shape[1])  # code rows per image (16)
    shown = []
    for image, (_, drawn) in zip(images, partial, strict=True):
        full_rows = drawn // side  # code rows drawn across their whole width
        top = image.height * full_rows // side
        if top < image.height:
            image.paste(NEUTRAL, (0, top, image.width, image.height))
        shown.append(image.resize((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.BILINEAR))
    return png_bytes(make_grid(shown))
