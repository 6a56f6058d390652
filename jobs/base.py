"""What every part of `Queue` shares: the engine, the limits, transactions and the clock.

The engine is the queue's own: code outside `jobs/` opens a queue (`Queue.connect`, `Queue.open`), calls
its operations and closes it; it never sees the engine or a statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jobs import errors
from jobs import queries as q
from jobs.db import check_schema, connect
from jobs.errors import DatabaseUnavailable
from jobs.faults import database_fault
from jobs.models import Job, SpaceSettings, require_aware, utcnow
from jobs.settings import Settings

RETRY_BACKOFF_SECONDS = 10.0  # first retry after a failed render; doubles per attempt
RETRY_BACKOFF_MAX_SECONDS = 600.0


def _setting(name: str) -> Any:
    """The default of an IMAGINE_* setting: `Settings` is the one source of the queue's defaults."""
    return Settings.model_fields[name].default


@dataclass(frozen=True, slots=True)
class Limits:
    """The queue's knobs; each named like the `Settings` field it comes from, with its default."""

    max_attempts: int = _setting("max_attempts")
    max_running_per_user: int = _setting("max_running_per_user")
    max_queued_per_user: int = _setting("max_queued_per_user")
    daily_quota_images: int = _setting("daily_quota_images")  # 0: unlimited
    candidates_per_image: int | None = _setting(
        "candidates_per_image"
    )  # None: the generator's device decides
    upscale_quota_images: int = _setting("upscale_quota_images")
    max_prompt_length: int = _setting("max_prompt_length")
    lease_seconds: float = _setting("lease_seconds")
    delivery_timeout_seconds: float = _setting("delivery_timeout_seconds")
    retry_backoff_seconds: float = RETRY_BACKOFF_SECONDS
    models: tuple[str, ...] = ()  # accepted `model` option values; () accepts any
    blocked_words: tuple[str, ...] = ()  # refused everywhere (IMAGINE_BLOCKED_WORDS); spaces add theirs

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_attempts=settings.max_attempts,
            max_running_per_user=settings.max_running_per_user,
            max_queued_per_user=settings.max_queued_per_user,
            daily_quota_images=settings.daily_quota_images,
            candidates_per_image=settings.candidates_per_image,
            upscale_quota_images=settings.upscale_quota_images,
            max_prompt_length=settings.max_prompt_length,
            lease_seconds=settings.lease_seconds,
            delivery_timeout_seconds=settings.delivery_timeout_seconds,
            models=(settings.model_name,),
            blocked_words=tuple(word.strip() for word in settings.blocked_words.split(",") if word.strip()),
        )


def now_or_utcnow(now: datetime | None) -> datetime:
    """The caller's `now` (refused if naive), else the current UTC time."""
    return utcnow() if now is None else require_aware(now, "now")


PING_TIMEOUT_SECONDS = 2.0


class QueueBase:
    """The engine and limits; `_reading` for read-only work, `_engine.begin()` for writes."""

    def __init__(self, *, engine: AsyncEngine, limits: Limits | None = None) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self.limits = limits or Limits()

    @classmethod
    def connect(cls, settings: Settings, *, limits: Limits | None = None) -> Self:
        """A queue on the configured database (no I/O until its first operation)."""
        return cls(engine=connect(settings), limits=limits or Limits.from_settings(settings))

    @classmethod
    async def open(cls, settings: Settings) -> Self:
        """`connect`, refusing a schema that is behind the code (`SchemaOutOfDate`: run `imagine migrate`)."""
        queue = cls.connect(settings)
        try:
            await queue.check_schema()
        except BaseException:
            await queue.close()
            raise
        return queue

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: AsyncEngine) -> Self:
        return cls(engine=engine, limits=Limits.from_settings(settings))

    async def close(self) -> None:
        """Close the database connections (the queue's owner calls it once, when done)."""
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def is_postgres(self) -> bool:
        """Postgres: LISTEN/NOTIFY wake-ups and SKIP LOCKED claims; SQLite polls."""
        return self._dialect == "postgresql"

    def fault(self, exc: BaseException) -> DatabaseUnavailable | None:
        """`exc` as the one line a person reads about this queue's database (None: not a database fault)."""
        return database_fault(exc, self._engine.url.render_as_string(hide_password=False))

    async def check_schema(self) -> None:
        await check_schema(self._engine)

    async def check_writable(self) -> None:
        """Raise the database's own error unless it takes writes: a read-only file or server refuses even
        a write that changes nothing. Long-running processes check it at start, to fail at once."""
        async with self._engine.begin() as conn:
            await conn.execute(q.forget_worker(""))  # deletes nothing: a worker id is never empty

    async def ping(self, *, timeout: float = PING_TIMEOUT_SECONDS) -> None:
        """Raise unless the database answers a trivial query within `timeout` seconds (health checks)."""
        async with asyncio.timeout(timeout), self._reading() as conn:
            await conn.execute(q.ping())

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """The one way to read: a deferred transaction, so on SQLite readers never queue behind the
        writer (WAL)."""
        async with self._engine.connect() as conn:
            await conn.execution_options(sqlite_deferred=True)
            yield conn

    async def _get(self, conn: AsyncConnection, job_id: int, *, lock: bool = False) -> Job:
        row = (await conn.execute(q.job_by_id(job_id, lock=lock, dialect=self._dialect))).one_or_none()
        if row is None:
            raise errors.JobNotFound(job_id)
        return Job.from_row(row)

    async def _space(self, conn: AsyncConnection, platform: str, guild_id: str) -> SpaceSettings:
        row = (await conn.execute(q.space_by_id(platform, guild_id))).one_or_none()
        if row is None:
            return SpaceSettings(platform=platform, guild_id=guild_id)
        return SpaceSettings(
            platform=platform,
            guild_id=guild_id,
            allowed_channels=tuple(row.allowed_channels),
            max_running_per_user=row.max_running_per_user,
            max_queued_per_user=row.max_queued_per_user,
            daily_quota_images=row.daily_quota_images,
            candidates_per_image=row.candidates_per_image,
            blocked_words=tuple(row.blocked_words),
            admin_role_ids=tuple(row.admin_role_ids),
            admin_user_ids=tuple(row.admin_user_ids),
        )
