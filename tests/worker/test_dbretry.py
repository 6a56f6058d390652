"""Riding out database faults in the generator's loops: a fault that cannot pass (a read-only file, here
a real one from SQLite) is logged once and, after `PERMANENT_FAULT_SECONDS`, raised as the one line the
process exits with; a dropped connection is ridden out for as long as it lasts."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from generator.dbretry import PERMANENT_FAULT_SECONDS, Outages
from jobs.errors import DatabaseUnavailable
from jobs.faults import database_fault


async def read_only_error(tmp_path: Path) -> tuple[OperationalError, str]:
    path = tmp_path / "imagine.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE workers (worker_id TEXT)")
    url = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM workers"))
    except OperationalError as exc:
        return exc, url
    finally:
        await engine.dispose()
    raise AssertionError("a read-only SQLite file took a write")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_fault_that_cannot_pass_is_logged_once_then_raised_as_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exc, url = await read_only_error(tmp_path)
    clock = Clock()
    outages = Outages(describe=lambda e: database_fault(e, url), clock=clock)
    caplog.set_level(logging.WARNING, logger="generator.dbretry")
    for _ in range(int(PERMANENT_FAULT_SECONDS) - 1):  # a pass a second, as the claim loop does
        outages.ride_out(exc, "claim")
        clock.now += 1.0
    assert (
        len(caplog.records) == 1
        and f"stopping in {PERMANENT_FAULT_SECONDS:.0f} s unless it clears" in caplog.records[0].message
    )
    clock.now += 1.0
    with pytest.raises(DatabaseUnavailable) as raised:
        outages.ride_out(exc, "claim")
    assert "read-only" in str(raised.value) and "IMAGINE_DATABASE_URL" in str(raised.value)
    assert "\n" not in str(raised.value)


async def test_a_streak_that_ended_starts_again(tmp_path: Path) -> None:
    exc, url = await read_only_error(tmp_path)
    clock = Clock()
    outages = Outages(describe=lambda e: database_fault(e, url), clock=clock)
    outages.ride_out(exc, "heartbeat")
    clock.now += PERMANENT_FAULT_SECONDS + 5  # it cleared meanwhile (no fault reported)
    outages.ride_out(exc, "heartbeat")  # a new streak: not raised
    clock.now += PERMANENT_FAULT_SECONDS - 1
    outages.ride_out(exc, "heartbeat")


async def test_a_dropped_connection_is_ridden_out_however_long() -> None:
    clock = Clock()
    outages = Outages(describe=lambda e: None, clock=clock)
    dropped = ConnectionResetError("connection reset by peer")
    for _ in range(3):
        outages.ride_out(dropped, "claim")
        clock.now += 60.0
    with pytest.raises(ZeroDivisionError):  # a bug is never ridden out
        outages.ride_out(ZeroDivisionError(), "claim")
