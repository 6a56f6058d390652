"""Compose 1–9 images into one near-square grid with thin gutters, and encode it as PNG."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from PIL import Image

GUTTER = 4  # pixels between images and around the grid
BACKGROUND = (255, 255, 255)


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) for `count` images: as square as possible, wider than tall (1→1×1, 2→2×1, 5→3×2)."""
    if not 1 <= count <= 9:
        raise ValueError(f"a grid holds 1 to 9 images, got {count}")
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def make_grid(images: Sequence[Image.Image], *, gutter: int = GUTTER) -> Image.Image:
    """Images (all the same size) left to right, top to bottom, `gutter` pixels apart and around."""
    columns, rows = grid_shape(len(images))
    width, height = images[0].size
    if any(image.size != (width, height) for image in images):
        raise ValueError("grid images must all have the same size")
    grid = Image.new(
        "RGB", (columns * width + (columns + 1) * gutter, rows * height + (rows + 1) * gutter), BACKGROUND
    )
    for i, image in enumerate(images):
        row, column = divmod(i, columns)
        grid.paste(
            image.convert("RGB"), (gutter + column * (width + gutter), gutter + row * (height + gutter))
        )
    return grid


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
