"""What every part of `Queue` shares: the engine, the limits, transactions and the clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jobs import errors
from jobs import queries as q
from jobs.models import Job, require_aware, utcnow
from jobs.settings import Settings

RETRY_BACKOFF_SECONDS = 10.0  # first retry after a failed render; doubles per attempt
RETRY_BACKOFF_MAX_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The queue's knobs (defaults from `Settings`)."""

    max_attempts: int = 3
    max_running_per_user: int = 2
    max_queued_per_user: int = 10
    daily_quota_images: int = 200  # 0: unlimited
    max_prompt_length: int = 300
    lease_seconds: float = 60.0
    delivery_timeout_seconds: float = 3600.0
    retry_backoff_seconds: float = RETRY_BACKOFF_SECONDS
    models: tuple[str, ...] = ()  # accepted `model` option values; () accepts any

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_attempts=settings.max_attempts,
            max_running_per_user=settings.max_running_per_user,
            max_queued_per_user=settings.max_queued_per_user,
            daily_quota_images=settings.daily_quota_images,
            max_prompt_length=settings.max_prompt_length,
            lease_seconds=settings.lease_seconds,
            delivery_timeout_seconds=settings.delivery_timeout_seconds,
            models=(settings.model_name,),
        )


def now_or_utcnow(now: datetime | None) -> datetime:
    """The caller's `now` (refused if naive), else the current UTC time."""
    return require_aware(now, "now") or utcnow()  # type: ignore[return-value]


class QueueBase:
    """The engine and limits; `_reading` for read-only work, `engine.begin()` for writes."""

    def __init__(self, *, engine: AsyncEngine, limits: Limits | None = None) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self.limits = limits or Limits()

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: AsyncEngine) -> Self:
        return cls(engine=engine, limits=Limits.from_settings(settings))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        # A deferred transaction: on SQLite, readers never queue behind the writer (WAL).
        async with self._engine.connect() as conn:
            await conn.execution_options(sqlite_deferred=True)
            yield conn

    async def _get(self, conn: AsyncConnection, job_id: int, *, lock: bool = False) -> Job:
        row = (await conn.execute(q.job_by_id(job_id, lock=lock, dialect=self._dialect))).one_or_none()
        if row is None:
            raise errors.JobNotFound(job_id)
        return Job.from_row(row)
