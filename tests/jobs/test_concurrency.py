"""Real processes against one database: each job claimed exactly once; a SIGKILLed worker's jobs come
back after its lease and another worker finishes them; past the attempt limit they fail, reason kept."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.models import Status
from jobs.queue import Queue
from jobs.schema import images, jobs
from tests.jobs.factories import insert_jobs, job_row

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


class Worker:
    """One `tests/jobs/worker_process.py` process and its JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(
        cls, url: str, worker_id: str, mode: str, lease: float, go_file: Path | None = None
    ) -> Worker:
        args = [sys.executable, "-m", "tests.jobs.worker_process", url, worker_id, mode, str(lease)]
        process = await asyncio.create_subprocess_exec(
            *args, *([str(go_file)] if go_file else []), cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        worker = cls(process)
        assert "ready" in await worker.line()
        return worker

    async def line(self, timeout: float = 60) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, f"worker exited with {await self.process.wait()}"
        return json.loads(raw)

    async def claimed(self) -> list[int]:
        message = await self.line(timeout=180)
        assert await asyncio.wait_for(self.process.wait(), 30) == 0
        return message["claimed"]

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.process.wait(), 10) == -signal.SIGKILL


async def _statuses(engine: AsyncEngine) -> dict[int, tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(jobs.c.id, jobs.c.status, jobs.c.attempts))
        return {row.id: (row.status, row.attempts) for row in rows}


async def test_four_processes_claim_2000_jobs_exactly_once(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    await insert_jobs(engine, [job_row(index, user=f"u{index % 7}") for index in range(2000)])
    go = tmp_path / "go"
    workers = [await Worker.start(db_url, f"w{n}", "drain", 30, go) for n in range(4)]
    go.touch()
    claims = await asyncio.gather(*(worker.claimed() for worker in workers))
    every = Counter(job_id for claimed in claims for job_id in claimed)
    assert len(every) == 2000 and set(every.values()) == {1}, "a job was claimed twice or lost"
    assert sum(1 for claimed in claims if claimed) >= 2, "the workers did not run concurrently"
    statuses = await _statuses(engine)
    assert set(statuses.values()) == {(Status.DONE.value, 1)}
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(images))).scalar_one() == 4000


async def test_sigkilled_worker_jobs_are_requeued_and_finished_by_another(
    engine: AsyncEngine, db_url: str, queue: Queue
) -> None:
    await insert_jobs(engine, [job_row(index) for index in range(10)])
    doomed = await Worker.start(db_url, "doomed", "hold", 2.0)
    held = (await doomed.line())["claimed"]
    assert len(held) == 4
    await doomed.kill()
    leased = await queue.get_job(held[0])
    assert leased.lease_owner == "doomed" and leased.lease_expires_at is not None
    assert await queue.reap(now=leased.lease_expires_at) == []  # not before the lease ends
    rescuer = await Worker.start(db_url, "rescuer", "drain", 30)
    rescued = await rescuer.claimed()
    assert set(held) <= set(rescued) and len(rescued) == 10
    statuses = await _statuses(engine)
    assert {statuses[job_id] for job_id in held} == {(Status.DONE.value, 2)}
    assert {statuses[job_id] for job_id in set(statuses) - set(held)} == {(Status.DONE.value, 1)}


async def test_killed_past_the_attempt_limit_fails_with_the_reason(
    engine: AsyncEngine, db_url: str, queue: Queue, make_queue: Callable[..., Queue]
) -> None:
    reaper = make_queue(max_attempts=2)  # as the worker processes allow
    await insert_jobs(engine, [job_row(0)])
    for attempt in (1, 2):  # the worker processes allow 2 attempts
        worker = await Worker.start(db_url, f"doomed-{attempt}", "hold", 1.0)
        assert len((await worker.line())["claimed"]) == 1
        await worker.kill()
        await asyncio.sleep(1.1)
        [reaped] = await reaper.reap()
        assert reaped.attempts == attempt
    assert reaped.status is Status.FAILED
    job = await queue.get_job(reaped.id)
    assert (job.status, job.error) == (Status.FAILED, "the worker rendering this died 2 times; giving up")


if os.name != "posix":  # pragma: no cover
    pytest.skip("SIGKILL needs POSIX", allow_module_level=True)
