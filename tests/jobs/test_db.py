"""SQLite is tuned for a queue: WAL, a busy timeout, foreign keys, and writers that BEGIN IMMEDIATE."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.db import SQLITE_BUSY_TIMEOUT_MS, connect, migrate
from tests.jobs.databases import sqlite_url


async def test_sqlite_pragmas_and_immediate_writers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "nested" / "imagine.db")  # the data dir is created
    await asyncio.to_thread(migrate, url)
    engine = connect(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() == SQLITE_BUSY_TIMEOUT_MS
        # A write transaction holds the write lock from BEGIN: a second writer waits, a reader does not.
        order: list[str] = []
        async with engine.begin() as first:
            second = asyncio.create_task(_write(engine, order))
            await asyncio.sleep(0.2)
            async with engine.connect() as reader:
                await reader.execution_options(sqlite_deferred=True)
                await reader.execute(text("SELECT count(*) FROM jobs"))
            order.append("first commits")
            await first.execute(text("SELECT 1"))
        await asyncio.wait_for(second, 10)
        assert order == ["first commits", "second began"]
    finally:
        await engine.dispose()


async def _write(engine: AsyncEngine, order: list[str]) -> None:
    async with engine.begin() as conn:
        order.append("second began")
        await conn.execute(text("SELECT 1"))
