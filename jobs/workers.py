"""The generator registry and wake-ups (LISTEN/NOTIFY). Part of `Queue` (see `jobs/queue.py`)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jobs import queries as q
from jobs.base import QueueBase
from jobs.base import now_or_utcnow as _now
from jobs.models import WorkerInfo, require_aware
from jobs.settings import Settings

NOTIFY_CHANNEL = "imagine_jobs"
SEEN_WINDOW_SECONDS = 3600.0  # `workers_alive` looks at rows this recent (no interval is longer)


@dataclass(frozen=True)
class Listener:
    notified: asyncio.Event = field(default_factory=asyncio.Event)  # a job was enqueued
    lost: asyncio.Event = field(default_factory=asyncio.Event)  # the LISTEN connection closed


class WorkersMixin(QueueBase):
    """Generators say they are alive; anyone may wait for new jobs."""

    async def worker_heartbeat(
        self,
        worker_id: str,
        *,
        device: str,
        model: str,
        batch_images: int,
        heartbeat_seconds: float = Settings.model_fields["heartbeat_seconds"].default,
        images_per_second: float | None = None,
        started_at: datetime | None = None,
        host: str | None = None,
        pid: int | None = None,
        now: datetime | None = None,
    ) -> None:
        """Register a generator, or say it is still alive (call every `heartbeat_seconds`; it counts as
        gone after missing two). `images_per_second` is its drawing rate over busy time (for ETAs).

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
            "heartbeat_seconds": heartbeat_seconds,
            "images_per_second": images_per_second,
            "last_seen_at": now,
        }
        if started_at is not None:
            values["started_at"] = require_aware(started_at, "started_at")
        async with self._engine.begin() as conn:
            await conn.execute(q.worker_seen(self._dialect, values))

    async def workers_alive(self, *, now: datetime | None = None) -> list[WorkerInfo]:
        """Generators alive now, each judged by the age of its last heartbeat against its own interval."""
        now = _now(now)
        return [info for info in await self.workers_seen(SEEN_WINDOW_SECONDS, now=now) if info.is_alive(now)]

    async def workers_seen(self, within_seconds: float, *, now: datetime | None = None) -> list[WorkerInfo]:
        """The registry's generators heard from within `within_seconds`, alive or not (admin views)."""
        since = _now(now) - timedelta(seconds=within_seconds)
        async with self._reading() as conn:
            rows = (await conn.execute(q.workers_seen_since(since))).all()
        return [WorkerInfo(**row._mapping) for row in rows]

    async def worker_stopped(self, worker_id: str) -> None:
        """A generator stopped cleanly: it leaves the registry at once (nobody waits for it)."""
        async with self._engine.begin() as conn:
            await conn.execute(q.forget_worker(worker_id))

    # --- wake-ups ------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        """Wake-ups when a job is enqueued (Postgres LISTEN/NOTIFY): `notified` is set on each NOTIFY,
        `lost` when the listening connection closes (a server restart, a killed backend): listen again.
        A hint only: wait with a timeout and poll anyway. On SQLite neither is ever set."""
        listener = Listener()
        if not self.is_postgres:
            yield listener
            return
        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None

            def on_notify(*_args: Any) -> None:
                listener.notified.set()

            def on_close(*_args: Any) -> None:
                listener.lost.set()

            raw.add_termination_listener(on_close)
            await raw.add_listener(NOTIFY_CHANNEL, on_notify)
            try:
                yield listener
            finally:
                raw.remove_termination_listener(on_close)
                if not raw.is_closed():
                    await raw.remove_listener(NOTIFY_CHANNEL, on_notify)
                else:  # the pool must not hand this connection out again
                    await conn.invalidate()
