"""Read and housekeeping queries for admin views (the web dashboard), beside the queue's own operations.

Bans, unbans, cancels and guild/workspace settings are *not* here: admins change those through `Queue`,
exactly as the chat admin commands do. This module only adds what an overview needs — searching the
history, the queue's shape right now, counters for `/metrics` — and one admin action the queue lacks,
deleting a job's pictures while keeping its usage row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, literal_column, or_, select

from jobs.models import Ban, Job, SpaceSettings, Status
from jobs.queue import Queue
from jobs.schema import bans, images, jobs, spaces
from jobs.usage import UsageFilter

ACTIVE = (Status.QUEUED.value, Status.RUNNING.value)


async def _read(queue: Queue, statement: Any) -> Sequence[Any]:
    # A deferred transaction: on SQLite, admin pages never queue behind the generator's writes (WAL).
    async with queue.engine.connect() as conn:
        await conn.execution_options(sqlite_deferred=True)
        return (await conn.execute(statement)).all()


# --- history ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobSearch:
    """History filters; empty strings and None mean "any"."""

    text: str = ""  # case-insensitive substring of the prompt
    user: str = ""  # user id or display name, exact (case-insensitive for names)
    status: str = ""
    platform: str = ""
    guild_id: str = ""
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    limit: int = 50
    offset: int = 0


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_conditions(search: JobSearch) -> list[Any]:
    conditions: list[Any] = []
    if search.text:
        pattern = f"%{_escape_like(search.text.casefold())}%"
        conditions.append(func.lower(jobs.c.prompt).like(pattern, escape="\\"))
    if search.user:
        conditions.append(
            or_(jobs.c.user_id == search.user, func.lower(jobs.c.user_name) == search.user.casefold())
        )
    if search.status:
        conditions.append(jobs.c.status == search.status)
    if search.platform:
        conditions.append(jobs.c.platform == search.platform)
    if search.guild_id:
        conditions.append(jobs.c.guild_id == search.guild_id)
    if search.since is not None:
        conditions.append(jobs.c.created_at >= search.since)
    if search.until is not None:
        conditions.append(jobs.c.created_at < search.until)
    return conditions


async def search_jobs(queue: Queue, search: JobSearch) -> tuple[list[Job], int]:
    """One page of matching jobs, newest first, and how many match in all."""
    conditions = _search_conditions(search)
    page: Select = (
        select(jobs).where(*conditions).order_by(jobs.c.id.desc()).limit(search.limit).offset(search.offset)
    )
    total = select(func.count()).select_from(jobs).where(*conditions)
    rows = await _read(queue, page)
    count = (await _read(queue, total))[0][0]
    return [Job.from_row(row) for row in rows], int(count)


async def image_indices(queue: Queue, job_id: int) -> list[int]:
    """Which pictures of a job are stored (-1 is the grid), without loading their bytes."""
    rows = await _read(
        queue, select(images.c.index).where(images.c.job_id == job_id).order_by(images.c.index)
    )
    return [row.index for row in rows]


async def delete_images(queue: Queue, job_id: int) -> int:
    """Delete a job's stored pictures; its `jobs` row (the usage record) stays. Returns how many went."""
    async with queue.engine.begin() as conn:
        return (await conn.execute(delete(images).where(images.c.job_id == job_id))).rowcount


# --- the queue right now ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Depth:
    """Queued and running work for one user or one guild/workspace."""

    platform: str
    key: str  # user id or guild id
    name: str  # display name (users) or "" (guilds)
    queued_jobs: int
    queued_images: int
    running_jobs: int


def _depth(group: Sequence[Any], name: Any) -> Select:
    is_queued = jobs.c.status == Status.QUEUED.value
    return (
        select(
            *group,
            name.label("name"),
            func.sum(case((is_queued, 1), else_=0)).label("queued_jobs"),
            func.sum(case((is_queued, jobs.c.images), else_=0)).label("queued_images"),
            func.sum(case((jobs.c.status == Status.RUNNING.value, 1), else_=0)).label("running_jobs"),
        )
        .where(jobs.c.status.in_(ACTIVE))
        .group_by(*group)
        .order_by(func.sum(case((is_queued, jobs.c.images), else_=0)).desc(), *group)
    )


async def depth_by_user(queue: Queue, limit: int = 50) -> list[Depth]:
    rows = await _read(
        queue, _depth((jobs.c.platform, jobs.c.user_id), func.max(jobs.c.user_name)).limit(limit)
    )
    return [
        Depth(r.platform, r.user_id, r.name or "", r.queued_jobs, r.queued_images, r.running_jobs)
        for r in rows
    ]


async def depth_by_guild(queue: Queue, limit: int = 50) -> list[Depth]:
    # A literal column, not a bound "": Postgres cannot type a parameter inside an aggregate.
    rows = await _read(queue, _depth((jobs.c.platform, jobs.c.guild_id), literal_column("''")).limit(limit))
    return [Depth(r.platform, r.guild_id, "", r.queued_jobs, r.queued_images, r.running_jobs) for r in rows]


async def jobs_with_status(queue: Queue, status: Status, limit: int = 100) -> list[Job]:
    """Running jobs oldest first (the batch in progress), or any other status newest first."""
    order = jobs.c.id if status in (Status.RUNNING, Status.QUEUED) else jobs.c.id.desc()
    rows = await _read(queue, select(jobs).where(jobs.c.status == status.value).order_by(order).limit(limit))
    return [Job.from_row(row) for row in rows]


# --- moderation lists ------------------------------------------------------------------------------------


async def all_bans(queue: Queue) -> list[Ban]:
    """Every ban on every platform, newest first (`Queue.bans` lists one platform)."""
    rows = await _read(queue, select(bans).order_by(bans.c.created_at.desc()))
    return [Ban(**row._mapping) for row in rows]


async def all_spaces(queue: Queue) -> list[SpaceSettings]:
    """Every guild/workspace with settings of its own."""
    rows = await _read(
        queue, select(spaces.c.platform, spaces.c.guild_id).order_by(spaces.c.platform, spaces.c.guild_id)
    )
    return [await queue.get_settings(row.platform, row.guild_id) for row in rows]


# --- counters for /metrics -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counters:
    jobs_by_status: dict[str, int]
    queued_images: int
    images_done_total: int
    images_done_since: int  # in the rate window
    delivery_by_state: dict[str, int]  # among finished jobs
    render_seconds_buckets: list[tuple[float, int]]  # (upper bound, cumulative count) of done jobs
    render_seconds_sum: float
    render_seconds_count: int


async def counters(queue: Queue, *, since: datetime, buckets: Sequence[float]) -> Counters:
    """Everything `/metrics` exposes, in a few aggregate statements (no rows loaded)."""
    by_status = await _read(queue, select(jobs.c.status, func.count()).group_by(jobs.c.status))
    done = jobs.c.status == Status.DONE.value
    images_row = (
        await _read(
            queue,
            select(
                func.coalesce(
                    func.sum(case((jobs.c.status == Status.QUEUED.value, jobs.c.images), else_=0)), 0
                ),
                func.coalesce(func.sum(case((done, jobs.c.images), else_=0)), 0),
                func.coalesce(
                    func.sum(case((and_(done, jobs.c.finished_at >= since), jobs.c.images), else_=0)), 0
                ),
            ),
        )
    )[0]
    delivery = await _read(
        queue,
        select(jobs.c.delivery, func.count())
        .where(jobs.c.status.in_((Status.DONE.value, Status.FAILED.value, Status.CANCELLED.value)))
        .group_by(jobs.c.delivery),
    )
    rendered = and_(done, jobs.c.gpu_seconds.is_not(None))
    histogram_row = (
        await _read(
            queue,
            select(
                *[
                    func.coalesce(func.sum(case((and_(rendered, jobs.c.gpu_seconds <= b), 1), else_=0)), 0)
                    for b in buckets
                ],
                func.coalesce(func.sum(case((rendered, jobs.c.gpu_seconds), else_=0.0)), 0.0),
                func.coalesce(func.sum(case((rendered, 1), else_=0)), 0),
            ),
        )
    )[0]
    return Counters(
        jobs_by_status={row[0]: int(row[1]) for row in by_status},
        queued_images=int(images_row[0]),
        images_done_total=int(images_row[1]),
        images_done_since=int(images_row[2]),
        delivery_by_state={row[0]: int(row[1]) for row in delivery},
        render_seconds_buckets=[
            (b, int(c)) for b, c in zip(buckets, histogram_row[: len(buckets)], strict=True)
        ],
        render_seconds_sum=float(histogram_row[len(buckets)]),
        render_seconds_count=int(histogram_row[len(buckets) + 1]),
    )


# --- usage export ----------------------------------------------------------------------------------------


async def usage_jobs(queue: Queue, filters: UsageFilter, *, batch: int = 1000) -> AsyncIterator[Job]:
    """Every job `jobs.usage.usage` counts for `filters` (the same WHERE), oldest first, streamed."""
    statement = filters.apply(select(jobs)).order_by(jobs.c.created_at, jobs.c.id)
    async with queue.engine.connect() as conn:
        await conn.execution_options(sqlite_deferred=True)
        result = await conn.stream(statement.execution_options(yield_per=batch))
        async for row in result:
            yield Job.from_row(row)
