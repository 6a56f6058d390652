"""Realistic history made through the queue's own API: enqueue → claim → finish/fail, cancel; real PNGs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from jobs.models import EnqueueRequest, Job, RenderedImage
from jobs.queue import Limits, Queue

# Generous limits: each test tightens only what it checks.
WEB_LIMITS = Limits(
    max_queued_per_user=1000, max_running_per_user=1000, daily_quota_images=0, retry_backoff_seconds=0.0
)
TOKENS = bytes(512)  # 256 uint16 codes
WORKER = "gpu-box-1:1234"


def png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def grid_png(tiles: list[tuple[int, int, int]], tile: int = 64) -> bytes:
    """A grid like the generator's: the pictures side by side in rows of up to 3."""
    columns = min(3, len(tiles))
    rows = -(-len(tiles) // columns)
    grid = Image.new("RGB", (columns * tile, rows * tile), (255, 255, 255))
    for index, colour in enumerate(tiles):
        grid.paste(
            Image.new("RGB", (tile, tile), colour), ((index % columns) * tile, (index // columns) * tile)
        )
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    return buffer.getvalue()


def day_start(days_ago: int, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)


def request(prompt: str, user: str, **overrides: Any) -> EnqueueRequest:
    values: dict[str, Any] = {
        "platform": "discord",
        "user_id": user,
        "user_name": user.title(),
        "guild_id": "g1",
        "channel_id": "c1",
        "prompt": prompt,
        "options": {"images": 2, "seed": 7},
    }
    return EnqueueRequest(**{**values, **overrides})


async def done_job(
    queue: Queue,
    prompt: str,
    user: str,
    *,
    at: datetime,
    wait: float = 2.0,
    render: float = 5.0,
    **overrides: Any,
) -> Job:
    """A job that waited `wait` s and rendered in `render` s; the queue must hold no other queued job."""
    job = (await queue.enqueue(request(prompt, user, **overrides), now=at)).job
    start = at + timedelta(seconds=wait)
    claimed = await queue.claim(WORKER, max_images=9, now=start)
    assert [c.id for c in claimed] == [job.id], "done_job needs an otherwise empty queue"
    colours = [(200, 60 + 20 * i, 40) for i in range(job.images)]
    # ranked as CLIP would leave them: best first
    images = [RenderedImage(png(c), TOKENS, score=0.31 - 0.02 * i) for i, c in enumerate(colours)]
    return await queue.finish(
        job.id,
        WORKER,
        grid_png=grid_png(colours),
        images=images,
        gpu_seconds=render,
        now=start + timedelta(seconds=render),
    )


async def failed_job(queue: Queue, prompt: str, user: str, *, at: datetime, **overrides: Any) -> Job:
    job = (await queue.enqueue(request(prompt, user, **overrides), now=at)).job
    await queue.claim(WORKER, max_images=9, now=at + timedelta(seconds=1))
    return await queue.fail(
        job.id,
        WORKER,
        reason="the generator ran out of memory",
        detail="CUDA out of memory (test)",
        retryable=False,
        gpu_seconds=1.0,
        now=at + timedelta(seconds=3),
    )


async def cancelled_job(queue: Queue, prompt: str, user: str, *, at: datetime, **overrides: Any) -> Job:
    job = (await queue.enqueue(request(prompt, user, **overrides), now=at)).job
    return await queue.cancel(job.id, user, now=at + timedelta(seconds=1))


async def seed_history(queue: Queue, now: datetime | None = None) -> dict[str, Job]:
    """A week of varied jobs over two platforms, three users, two guilds; nothing left queued."""
    now = now or datetime.now(UTC)
    jobs: dict[str, Job] = {}
    jobs["castle"] = await done_job(
        queue, "a castle on a hill at sunset", "alice", at=day_start(6, now) + timedelta(hours=9)
    )
    jobs["fox"] = await done_job(
        queue, "a red fox in the snow", "bob", at=day_start(5, now) + timedelta(hours=10), wait=4, render=6
    )
    jobs["boat"] = await done_job(
        queue,
        "a paper boat on a lake",
        "carol",
        at=day_start(3, now) + timedelta(hours=11),
        wait=1,
        render=3,
        platform="slack",
        guild_id="T1",
        channel_id="C9",
        options={"images": 4, "seed": 3},
    )
    jobs["robot"] = await done_job(
        queue,
        "a robot painting flowers",
        "alice",
        at=day_start(2, now) + timedelta(hours=8),
        wait=6,
        render=8,
    )
    jobs["failed"] = await failed_job(
        queue, "a storm over the sea", "bob", at=day_start(2, now) + timedelta(hours=9)
    )
    jobs["cancelled"] = await cancelled_job(
        queue, "a cat wearing a hat", "alice", at=day_start(1, now) + timedelta(hours=7)
    )
    jobs["city"] = await done_job(
        queue,
        "a city of glass at night",
        "carol",
        at=day_start(1, now) + timedelta(hours=12),
        wait=3,
        render=4,
        platform="slack",
        guild_id="T1",
        channel_id="C9",
    )
    jobs["tree"] = await done_job(
        queue,
        "an old oak tree in fog",
        "bob",
        at=day_start(0, now) + timedelta(minutes=5),
        guild_id="g2",
        channel_id="c7",
    )
    return jobs
