"""The generator registry and wake-ups (LISTEN/NOTIFY). Part of `Queue` (see `jobs/queue.py`)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from jobs import queries as q
from jobs.base import QueueBase
from jobs.base import now_or_utcnow as _now
from jobs.models import WorkerInfo, require_aware

NOTIFY_CHANNEL = "imagine_jobs"


class WorkersMixin(QueueBase):
    """Generators say they are alive; anyone may wait for new jobs."""

    async def worker_heartbeat(
        self,
        worker_id: str,
        *,
        device: str,
        model: str,
        batch_images: int,
        started_at: datetime | None = None,
        host: str | None = None,
        pid: int | None = None,
        now: datetime | None = None,
    ) -> None:
        """Register a generator, or say it is still alive (call every heartbeat interval).

        `finish` counts the worker's jobs and images; `started_at` (the process start) defaults to the
        first heartbeat's time — a restarted worker that passes it has its counters reset.
        """
        now = _now(now)
        values: dict[str, Any] = {
            "worker_id": worker_id,
            "host": host or socket.gethostname(),
            "pid": pid or os.getpid(),
            "device": device,
            "model": model,
            "batch_images": batch_images,
            "last_seen_at": now,
        }
        if started_at is not None:
            values["started_at"] = require_aware(started_at, "started_at")
        async with self._engine.begin() as conn:
            await conn.execute(q.worker_seen(self._dialect, values))

    async def workers_online(
        self, *, within_seconds: float | None = None, now: datetime | None = None
    ) -> list[WorkerInfo]:
        """Generators seen within `within_seconds` (default: one lease)."""
        now = _now(now)
        since = now - timedelta(seconds=within_seconds or self.limits.lease_seconds)
        async with self._reading() as conn:
            rows = (await conn.execute(q.workers_seen_since(since))).all()
        return [WorkerInfo(**row._mapping) for row in rows]

    # --- wake-ups ------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Event]:
        """An Event set whenever a job is enqueued (Postgres LISTEN/NOTIFY). A hint only: wait on it
        with a timeout and poll anyway. On SQLite it is never set; polling does the work."""
        event = asyncio.Event()
        if not self.is_postgres:
            yield event
            return
        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None

            def on_notify(*_args: Any) -> None:
                event.set()

            await raw.add_listener(NOTIFY_CHANNEL, on_notify)
            try:
                yield event
            finally:
                await raw.remove_listener(NOTIFY_CHANNEL, on_notify)
