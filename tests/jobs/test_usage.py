"""Usage numbers from a history made with known times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import UsageFilter
from jobs.queue import Queue
from jobs.reports import p95
from tests.jobs.factories import rendered, request

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday (ISO week 48)


async def _history(queue: Queue) -> None:
    """alice: 3 done jobs on Monday (waits 1, 2, 3 s; renders 10, 20, 30 s); bob: one failed and one
    cancelled on Tuesday in g2 with the mega model; carol: one queued on Sunday next week."""
    for index, images in enumerate((4, 2, 1)):
        created = T0 + timedelta(minutes=index)
        started = created + timedelta(seconds=index + 1)
        job = (await queue.enqueue(request(user="alice", options={"images": images}), now=created)).job
        await queue.claim("w", 9, now=started)
        await queue.finish(
            job.id,
            "w",
            grid_png=b"g",
            images=rendered(images),
            gpu_seconds=5.0,
            now=started + timedelta(seconds=10 * (index + 1)),
        )
    tuesday = T0 + timedelta(days=1)
    bob = request(user="bob", guild_id="g2", channel_id="c9", options={"model": "dalle-mini/dalle-mega"})
    failed = (await queue.enqueue(bob, now=tuesday)).job
    await queue.claim("w", 9, now=tuesday + timedelta(seconds=4))
    await queue.fail(
        failed.id, "w", reason="boom", retryable=False, gpu_seconds=2.0, now=tuesday + timedelta(seconds=5)
    )
    cancelled = (await queue.enqueue(bob, now=tuesday)).job
    await queue.cancel(cancelled.id, "bob", now=tuesday)
    await queue.enqueue(request("a dog", user="carol"), now=T0 + timedelta(days=6))


async def test_usage_per_user_and_totals(queue: Queue) -> None:
    await _history(queue)
    by_user = {row.key: row for row in await queue.usage(by="user")}
    alice = by_user["discord:alice"]
    assert (alice.label, alice.jobs, alice.images, alice.done, alice.failures) == ("Alice", 3, 7, 3, 0)
    assert (alice.mean_wait_s, alice.p95_wait_s) == (2.0, 3.0)
    assert (alice.mean_render_s, alice.p95_render_s, alice.gpu_seconds) == (20.0, 30.0, 15.0)
    bob = by_user["discord:bob"]
    assert (bob.jobs, bob.failures, bob.cancellations, bob.done, bob.gpu_seconds) == (2, 1, 1, 0, 2.0)
    assert (bob.mean_wait_s, bob.mean_render_s) == (4.0, None)
    [total] = await queue.usage()
    assert (total.jobs, total.images, total.queued_or_running, total.gpu_seconds) == (6, 19, 1, 17.0)


async def test_usage_per_day_week_guild_model(queue: Queue) -> None:
    await _history(queue)
    days = {row.key: row.jobs for row in await queue.usage(by="day")}
    assert days == {"2026-11-23": 3, "2026-11-24": 2, "2026-11-29": 1}
    assert {row.key: row.jobs for row in await queue.usage(by="week")} == {"2026-W48": 6}
    assert {row.key: row.jobs for row in await queue.usage(by="guild")} == {
        "discord:g1": 4,
        "discord:g2": 2,
    }
    models = {row.label: row.jobs for row in await queue.usage(by="model")}
    assert models == {"(default model)": 4, "dalle-mini/dalle-mega": 2}


async def test_filters_and_recent_prompts(queue: Queue) -> None:
    await _history(queue)
    monday = UsageFilter(since=T0, until=T0 + timedelta(days=1))
    [total] = await queue.usage(filters=monday)
    assert total.jobs == 3
    assert await queue.usage(filters=UsageFilter(platform="slack")) == []
    [g2] = await queue.usage(filters=UsageFilter(guild_id="g2", channel_id="c9"))
    assert g2.jobs == 2
    newest = await queue.recent_prompts(limit=2)
    assert [(job.user_id, job.prompt) for job in newest] == [("carol", "a dog"), ("bob", "a cat in a hat")]
    mega = await queue.recent_prompts(filters=UsageFilter(model="dalle-mini/dalle-mega", user_id="bob"))
    assert len(mega) == 2
    with pytest.raises(ValueError, match="by must be one of"):
        await queue.usage(by="colour")  # type: ignore[arg-type]


def test_p95_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([5.0]) == 5.0
    assert p95([float(v) for v in range(1, 101)]) == 95.0
    assert p95([float(v) for v in range(1, 21)]) == 19.0
