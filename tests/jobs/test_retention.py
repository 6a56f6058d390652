"""Retention on SQLite and Postgres: old pictures deleted, old prompts blanked, every jobs row kept."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.cli import main
from jobs.db import connect
from jobs.models import EXPIRED_PROMPT, UsageFilter
from jobs.queue import Queue
from jobs.retention import Retention
from jobs.schema import images, jobs
from tests.jobs.factories import TOKENS, count_jobs, insert_jobs, job_row

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FINISHED = {"status": "done", "delivery": "delivered", "gpu_seconds": 2.0, "attempts": 0}


def _age(days: float, **overrides: object) -> dict[str, object]:
    created = NOW - timedelta(days=days)
    return {
        "created_at": created,
        "run_after": created,
        "started_at": created,
        "finished_at": created + timedelta(seconds=5),
        **FINISHED,
        **overrides,
    }


async def _setup(engine: AsyncEngine) -> dict[str, int]:
    """Jobs of several ages and states, each with a grid and 2 pictures; returns their ids by name."""
    cases = {
        "old": _age(40),
        "old_failed": _age(40, status="failed", delivery="undeliverable"),
        "old_undelivered": _age(40, delivery="pending"),  # a poster may still need it
        "old_running": _age(40, status="running", finished_at=None),
        "month": _age(20),
        "new": _age(1),
    }
    rows = [job_row(index, images=2, **values) for index, values in enumerate(cases.values())]
    await insert_jobs(engine, rows)
    async with engine.begin() as conn:
        ids = (await conn.execute(select(jobs.c.id).order_by(jobs.c.id))).scalars().all()
        await conn.execute(
            images.insert(),
            [
                {"job_id": job_id, "index": index, "png": b"png", "tokens": None if index < 0 else TOKENS}
                for job_id in ids
                for index in (-1, 0, 1)
            ],
        )
    return dict(zip(cases, ids, strict=True))


async def _images_by_job(engine: AsyncEngine) -> dict[int, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(images.c.job_id, func.count()).group_by(images.c.job_id))
        return {job_id: count for job_id, count in rows.all()}


async def _prompts(engine: AsyncEngine) -> dict[int, tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(jobs.c.id, jobs.c.prompt, jobs.c.prompt_normalized))
        return {row.id: (row.prompt, row.prompt_normalized) for row in rows.all()}


async def test_old_pictures_and_prompts_go_usage_rows_stay(engine: AsyncEngine) -> None:
    ids = await _setup(engine)
    since = UsageFilter(since=NOW - timedelta(days=365))
    usage_before = await Queue(engine=engine).usage(by="user", filters=since)

    gone = await Queue(engine=engine).apply_retention(
        Retention(images=timedelta(days=30), prompts=timedelta(days=10)), now=NOW, batch=1
    )

    kept = await _images_by_job(engine)
    assert gone.images_deleted == 2 * 3
    assert ids["old"] not in kept and ids["old_failed"] not in kept
    for name in ("old_undelivered", "old_running", "month", "new"):
        assert kept[ids[name]] == 3, name
    prompts = await _prompts(engine)
    blanked = {ids["old"], ids["old_failed"], ids["month"]}
    assert gone.prompts_blanked == 3
    for job_id, (prompt, normalized) in prompts.items():
        is_blank = (prompt, normalized) == (EXPIRED_PROMPT, EXPIRED_PROMPT)
        assert is_blank == (job_id in blanked), job_id
    assert await count_jobs(engine) == len(ids)
    assert await Queue(engine=engine).usage(by="user", filters=since) == usage_before

    again = await Queue(engine=engine).apply_retention(
        Retention(images=timedelta(days=30), prompts=timedelta(days=10)), now=NOW
    )
    assert (again.images_deleted, again.prompts_blanked) == (0, 0)


async def test_forever_touches_nothing(engine: AsyncEngine) -> None:
    ids = await _setup(engine)
    retention = Retention.from_days(0, 0)
    assert retention.is_forever
    gone = await Queue(engine=engine).apply_retention(retention, now=NOW)
    assert (gone.images_deleted, gone.prompts_blanked) == (0, 0)
    assert set((await _images_by_job(engine)).values()) == {3} and len(await _images_by_job(engine)) == len(
        ids
    )


def test_from_days_reads_days() -> None:
    assert Retention.from_days(30, 0.5) == Retention(timedelta(days=30), timedelta(hours=12))
    assert Retention.from_days(0, 0).is_forever


def test_imagine_retention_command(db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    """`imagine retention` applies it at once, with the days from the settings or its options."""
    monkeypatch.chdir(Path(__file__).parent)  # no developer .env
    old = datetime.now(UTC) - timedelta(days=40)

    async def setup() -> int:
        engine = connect(db_url)
        try:
            await insert_jobs(engine, [job_row(1, **{**_age(0), "created_at": old, "run_after": old})])
            async with engine.begin() as conn:
                job_id = int((await conn.execute(select(func.max(jobs.c.id)))).scalar_one())
                await conn.execute(
                    images.insert(), [{"job_id": job_id, "index": -1, "png": b"p", "tokens": None}]
                )
            return job_id
        finally:
            await engine.dispose()

    async def pictures(job_id: int) -> int:
        engine = connect(db_url)
        try:
            return (await _images_by_job(engine)).get(job_id, 0)
        finally:
            await engine.dispose()

    job_id = asyncio.run(setup())
    assert main(["--database-url", db_url, "retention"]) == 0
    assert "retention is off" in capsys.readouterr().out and asyncio.run(pictures(job_id)) == 1
    monkeypatch.setenv("IMAGINE_RETENTION_PROMPTS_DAYS", "100")
    assert main(["--database-url", db_url, "retention", "--images-days", "30"]) == 0
    assert re.fullmatch(r"[1-9]\d* pictures deleted, \d+ prompts blanked\n", capsys.readouterr().out)
    assert asyncio.run(pictures(job_id)) == 0
