"""`jobs/reports.py` (the dashboard's read queries and picture deletion) on SQLite and on Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from jobs.db import connect, migrate
from jobs.metrics import DELIVERY_SECONDS_BUCKETS, QUEUE_WAIT_SECONDS_BUCKETS, RENDER_SECONDS_BUCKETS
from jobs.models import EnqueueRequest, JobSearch, Status, UsageFilter
from jobs.queue import Queue
from jobs.schema import metadata
from tests.jobs.databases import ENGINES, copy_sqlite, fresh_postgres_database, require_postgres
from tests.web.data import WEB_LIMITS, WORKER, seed_history


@pytest.fixture(scope="session")
def web_postgres_url() -> Iterator[str]:
    require_postgres()
    with fresh_postgres_database("_web") as url:
        migrate(url)
        yield url


@pytest.fixture(params=ENGINES)
def any_db_url(request: pytest.FixtureRequest, web_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file, or this session's Postgres database (emptied below)."""
    if request.param == "sqlite":
        return copy_sqlite(web_sqlite_template, tmp_path / "imagine.db")
    return str(request.getfixturevalue("web_postgres_url"))


@pytest.fixture
async def any_queue(any_db_url: str) -> AsyncIterator[Queue]:
    engine = connect(any_db_url)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            tables = ", ".join(table.name for table in metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield Queue(engine=engine, limits=WEB_LIMITS)
    await engine.dispose()


async def test_search_jobs(any_queue: Queue) -> None:
    jobs = await seed_history(any_queue)
    found, total = await any_queue.search_jobs(JobSearch(text="FoX"))
    assert total == 1 and [job.id for job in found] == [jobs["fox"].id]
    found, total = await any_queue.search_jobs(JobSearch(user="Carol"))  # a display name
    assert total == 2 and [job.id for job in found] == [jobs["city"].id, jobs["boat"].id]  # newest first
    _, total = await any_queue.search_jobs(JobSearch(text="100%_"))
    assert total == 0
    found, total = await any_queue.search_jobs(JobSearch(status="failed", platform="discord"))
    assert [job.id for job in found] == [jobs["failed"].id]
    page, total = await any_queue.search_jobs(JobSearch(limit=3, offset=3))
    assert total == 8 and len(page) == 3 and page[0].id == 5
    since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    found, _ = await any_queue.search_jobs(JobSearch(since=since, until=since + timedelta(days=1)))
    assert [job.id for job in found] == [jobs["tree"].id]


async def test_queue_shape_and_counters(any_queue: Queue) -> None:
    history = await seed_history(any_queue)
    for user, guild in (("u1", "g1"), ("u1", "g1"), ("u2", "g2")):
        request = EnqueueRequest(
            platform="discord", user_id=user, user_name=user.upper(), guild_id=guild, prompt="p"
        )
        await any_queue.enqueue(request)
    await any_queue.claim(WORKER, max_images=4)
    by_user = await any_queue.depth_by_user()
    assert [(d.key, d.name, d.queued_jobs, d.queued_images, d.running_jobs) for d in by_user] == [
        ("u1", "U1", 1, 4, 1),
        ("u2", "U2", 1, 4, 0),
    ]
    by_guild = await any_queue.depth_by_guild()
    assert [(d.key, d.queued_jobs, d.running_jobs) for d in by_guild] == [("g1", 1, 1), ("g2", 1, 0)]
    assert len(await any_queue.jobs_with_status(Status.RUNNING)) == 1

    boat = history["boat"]
    await any_queue.mark_delivered(boat.id, now=boat.finished_at + timedelta(seconds=1.5))
    counts = await any_queue.counters(
        since=datetime.now(UTC) - timedelta(days=30),
        wait_buckets=QUEUE_WAIT_SECONDS_BUCKETS,
        render_buckets=RENDER_SECONDS_BUCKETS,
        delivery_buckets=DELIVERY_SECONDS_BUCKETS,
    )
    assert counts.jobs_by_status == {"done": 6, "failed": 1, "cancelled": 1, "queued": 2, "running": 1}
    assert counts.queued_images == 8 and counts.images_done_since == 14
    by_group = {(f.platform, f.kind, f.outcome): (f.jobs, f.images, f.gpu_seconds) for f in counts.finished}
    assert by_group == {
        ("discord", "imagine", "done"): (4, 8, 24.0),
        ("slack", "imagine", "done"): (2, 6, 7.0),
        ("discord", "imagine", "failed"): (1, 0, 1.0),
        ("discord", "imagine", "cancelled"): (1, 0, 0.0),
    }
    assert counts.render_seconds.count == 6 and counts.render_seconds.sum == 31.0
    assert dict(counts.render_seconds.buckets)[5.0] == 4
    # waits of 2, 4, 1, 6, 1 (the failed job), 3, 2 s and the just-claimed job's ~0 s, on both engines
    assert counts.queue_wait_seconds.count == 8
    assert counts.queue_wait_seconds.sum == pytest.approx(19.0, abs=0.5)
    assert dict(counts.queue_wait_seconds.buckets)[2.5] == 5
    assert counts.delivery_seconds.count == 1
    assert counts.delivery_seconds.sum == pytest.approx(1.5, abs=0.01)
    assert dict(counts.delivery_seconds.buckets)[1.0] == 0 and dict(counts.delivery_seconds.buckets)[2.5] == 1
    assert counts.delivery_by_state == {"pending": 7, "delivered": 1}


async def test_delete_images_keeps_the_job(any_queue: Queue) -> None:
    jobs = await seed_history(any_queue)
    assert await any_queue.image_indices(jobs["boat"].id) == [-1, 0, 1, 2, 3]
    assert await any_queue.delete_images(jobs["boat"].id) == 5
    assert await any_queue.image_indices(jobs["boat"].id) == []
    assert (await any_queue.get_job(jobs["boat"].id)).status is Status.DONE
    [total] = await any_queue.usage(filters=UsageFilter(user_id="carol"))
    assert total.jobs == 2 and total.images == 6  # the usage record is untouched


async def test_usage_jobs_match_usage(any_queue: Queue) -> None:
    await seed_history(any_queue)
    filters = UsageFilter(platform="discord", since=datetime.now(UTC) - timedelta(days=3))
    rows = [job async for job in any_queue.usage_jobs(filters, batch=2)]
    [total] = await any_queue.usage(filters=filters)
    assert len(rows) == total.jobs and sum(job.images for job in rows) == total.images
    assert [job.created_at for job in rows] == sorted(job.created_at for job in rows)


async def test_moderation_lists(any_queue: Queue) -> None:
    await any_queue.ban("discord", "u1", reason="spam", banned_by="dashboard")
    await any_queue.ban("slack", "U9", guild_id="T1")
    await any_queue.update_settings("slack", "T1", blocked_words=["gore"])
    assert {(b.platform, b.user_id, b.guild_id) for b in await any_queue.all_bans()} == {
        ("discord", "u1", ""),
        ("slack", "U9", "T1"),
    }
    [space] = await any_queue.all_spaces()
    assert (space.platform, space.guild_id, space.blocked_words) == ("slack", "T1", ("gore",))
