"""Upscale jobs in the render loop (tiny checkpoints, real SQLite): drawn beside the batch, stored at 4× the
size, stopped within a tile when cancelled while drawing, and refused for what they cannot start from."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from generator.engine import ModelEngine
from generator.model.dalle import DalleMini
from generator.model.upscale import Upscaler
from generator.testing import tiny_extras
from jobs.errors import BadParent
from jobs.models import GRID_INDEX, EnqueueRequest, Kind, Status
from jobs.queue import Queue
from tests.fakes.poster import RecordingPoster
from tests.worker.harness import make_generator, wait_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


class PacedUpscaler:
    """The tiny Swin2SR in 8-px tiles, pausing after each: an upscale a test can cancel midway."""

    def __init__(self, directory: Path) -> None:
        self.upscaler = Upscaler.load(directory)
        self.tiles = 0

    def upscale(self, image: Any, *, should_stop: Any = None, progress: Any = None) -> Image.Image:
        def paced(fraction: float) -> None:
            self.tiles += 1
            time.sleep(0.05)
            if progress is not None:
                progress(fraction)

        return self.upscaler.upscale(image, tile=8, overlap=2, should_stop=should_stop, progress=paced)


def ask(kind: Kind = Kind.IMAGINE, parent: int | None = None, index: int | None = None) -> EnqueueRequest:
    options = {"images": 2, "seed": 4} if kind is Kind.IMAGINE else {}
    return EnqueueRequest(
        platform="cli", user_id="u1", prompt="" if parent else "a boat", options=options,
        kind=kind, parent_job_id=parent, image_index=index,
    )  # fmt: skip


async def ended(queue: Queue, job_id: int) -> bool:
    job = await queue.get_job(job_id)
    return job.status in (Status.DONE, Status.CANCELLED, Status.FAILED) and job.delivery.value == "delivered"


async def test_upscale_is_stored_four_times_larger_and_cancellable_midway(
    queue: Queue, tiny_model: DalleMini, tiny_checkpoints: tuple[Path, Path], running
) -> None:
    upscaler = PacedUpscaler(tiny_extras(tiny_checkpoints[0])[1])
    generator = make_generator(
        queue,
        ModelEngine(tiny_model, capacity=4, model_name="tiny"),
        posters={"cli": RecordingPoster()},
        upscaler=upscaler,
    )
    grid = (await queue.enqueue(ask())).job
    await running(generator.worker)
    await wait_until(lambda: ended(queue, grid.id), what="the grid")

    upscale = (await queue.enqueue(ask(Kind.UPSCALE, grid.id, 1))).job
    assert upscale.images == 1 and upscale.quota_images == queue.limits.upscale_quota_images
    await wait_until(lambda: ended(queue, upscale.id), what="the upscale")
    done = await queue.get_job(upscale.id)
    assert done.status is Status.DONE and done.gpu_seconds and done.progress == 1.0
    [source] = [i for i in await queue.images(grid.id) if i.index == 1]
    stored = {i.index: i for i in await queue.images(upscale.id)}
    assert sorted(stored) == [GRID_INDEX, 0] and stored[0].tokens is None and stored[0].score is None
    with Image.open(io.BytesIO(source.png)) as small, Image.open(io.BytesIO(stored[0].png)) as big:
        assert big.size == (4 * small.width, 4 * small.height)
    tiles_whole = upscaler.tiles

    again = (await queue.enqueue(ask(Kind.UPSCALE, grid.id, 0))).job

    async def drawing() -> bool:
        return (await queue.get_job(again.id)).progress > 0

    await wait_until(drawing, what="the second upscale under way")
    await queue.cancel(again.id, "u1")
    await wait_until(lambda: ended(queue, again.id), what="the cancelled upscale")
    assert (await queue.get_job(again.id)).status is Status.CANCELLED
    assert await queue.images(again.id) == []
    assert upscaler.tiles - tiles_whole < tiles_whole  # it stopped before its last tile

    with pytest.raises(BadParent, match="is an upscaled picture"):
        await queue.enqueue(ask(Kind.UPSCALE, upscale.id, 0))
    with pytest.raises(BadParent, match="has images 0 to 1, not 5"):
        await queue.enqueue(ask(Kind.UPSCALE, grid.id, 5))
