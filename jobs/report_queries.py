"""Every read statement of the reports (usage tables, history search, the queue's shape, /metrics counters),
each named for what it reads. The queue's own statements are in `jobs/queries.py`; the operations that run
these are `jobs/reports.py`. Nothing outside `jobs/` builds SQL.

All of them only read: they run in a deferred transaction (`QueueBase._reading`), so on SQLite an admin
page never queues behind a generator's writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, and_, case, func, literal_column, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from jobs.models import ACTIVE, FINAL, JobSearch, Kind, Status, UsageFilter, require_aware
from jobs.schema import bans, images, jobs, spaces

# What the usage summary reads of each job (only these columns: the p95 is computed in Python).
USAGE_COLUMNS = (
    jobs.c.platform,
    jobs.c.guild_id,
    jobs.c.channel_id,
    jobs.c.user_id,
    jobs.c.user_name,
    jobs.c.model,
    jobs.c.kind,
    jobs.c.status,
    jobs.c.images,
    jobs.c.created_at,
    jobs.c.started_at,
    jobs.c.finished_at,
    jobs.c.gpu_seconds,
)


# --- usage ---------------------------------------------------------------------------------------------


def _usage_where(stmt: Select[Any], filters: UsageFilter) -> Select[Any]:
    for column, value in (
        (jobs.c.platform, filters.platform),
        (jobs.c.guild_id, filters.guild_id),
        (jobs.c.channel_id, filters.channel_id),
        (jobs.c.user_id, filters.user_id),
        (jobs.c.model, filters.model),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.since is not None:
        stmt = stmt.where(jobs.c.created_at >= require_aware(filters.since, "since"))
    if filters.until is not None:
        stmt = stmt.where(jobs.c.created_at < require_aware(filters.until, "until"))
    return stmt


def usage_rows(filters: UsageFilter) -> Select[Any]:
    """The columns the usage summary counts, for every job the filters match."""
    return _usage_where(select(*USAGE_COLUMNS), filters)


def recent_jobs(filters: UsageFilter, limit: int) -> Select[Any]:
    """The newest jobs the filters match, newest first."""
    return (
        _usage_where(select(jobs), filters).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    )


def usage_jobs(filters: UsageFilter) -> Select[Any]:
    """Every job the usage summary counts for `filters` (the same WHERE), oldest first (the CSV export)."""
    return _usage_where(select(jobs), filters).order_by(jobs.c.created_at, jobs.c.id)


# --- history ---------------------------------------------------------------------------------------------


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


def search_page(search: JobSearch) -> Select[Any]:
    """One page of the history: jobs whose prompt, user, status, platform, guild and dates match."""
    return (
        select(jobs)
        .where(*_search_conditions(search))
        .order_by(jobs.c.id.desc())
        .limit(search.limit)
        .offset(search.offset)
    )


def search_count(search: JobSearch) -> Select[Any]:
    """How many jobs match the search in all (the history's page count)."""
    return select(func.count()).select_from(jobs).where(*_search_conditions(search))


def image_indices(job_id: int) -> Select[Any]:
    """Which pictures of a job are stored (-1 is the grid), without their bytes."""
    return select(images.c.index).where(images.c.job_id == job_id).order_by(images.c.index)


def image_indices_of(job_ids: Sequence[int]) -> Select[Any]:
    """Which pictures of several jobs are stored and their CLIP scores, in one round trip (a gallery page)."""
    return (
        select(images.c.job_id, images.c.index, images.c.score)
        .where(images.c.job_id.in_(job_ids))
        .order_by(images.c.job_id, images.c.index)
    )


def image_scores(job_id: int) -> Select[Any]:
    """The CLIP score of each stored image of a job (not the grid), in grid order, without their bytes."""
    return (
        select(images.c.index, images.c.score)
        .where(images.c.job_id == job_id, images.c.index >= 0)
        .order_by(images.c.index)
    )


# --- the queue right now -------------------------------------------------------------------------------


def _depth(group: Sequence[Any], name: Any, limit: int) -> Select[Any]:
    is_queued = jobs.c.status == Status.QUEUED
    return (
        select(
            *group,
            name.label("name"),
            func.sum(case((is_queued, 1), else_=0)).label("queued_jobs"),
            func.sum(case((is_queued, jobs.c.images), else_=0)).label("queued_images"),
            func.sum(case((jobs.c.status == Status.RUNNING, 1), else_=0)).label("running_jobs"),
        )
        .where(jobs.c.status.in_(ACTIVE))
        .group_by(*group)
        .order_by(func.sum(case((is_queued, jobs.c.images), else_=0)).desc(), *group)
        .limit(limit)
    )


def depth_by_user(limit: int) -> Select[Any]:
    """Queued and running work per user, most queued images first."""
    return _depth((jobs.c.platform, jobs.c.user_id), func.max(jobs.c.user_name), limit)


def depth_by_guild(limit: int) -> Select[Any]:
    """Queued and running work per guild/workspace, most queued images first."""
    # A literal column, not a bound "": Postgres cannot type a parameter inside an aggregate.
    return _depth((jobs.c.platform, jobs.c.guild_id), literal_column("''"), limit)


def jobs_with_status(status: Status, limit: int) -> Select[Any]:
    """Running and queued jobs oldest first (the batch in progress, the line), the others newest first."""
    order = jobs.c.id if status in ACTIVE else jobs.c.id.desc()
    return select(jobs).where(jobs.c.status == status).order_by(order).limit(limit)


# --- moderation lists ------------------------------------------------------------------------------------


def all_bans() -> Select[Any]:
    """Every ban on every platform, newest first."""
    return select(bans).order_by(bans.c.created_at.desc())


def spaces_with_settings() -> Select[Any]:
    """Every guild/workspace that has settings of its own."""
    return select(spaces.c.platform, spaces.c.guild_id).order_by(spaces.c.platform, spaces.c.guild_id)


# --- counters for /metrics -------------------------------------------------------------------------------


def jobs_by_status() -> Select[Any]:
    return select(jobs.c.status, func.count()).group_by(jobs.c.status)


def image_totals(since: datetime) -> Select[Any]:
    """Images queued now, and images of done jobs finished since `since` (the rate window)."""
    done = jobs.c.status == Status.DONE
    return select(
        func.coalesce(func.sum(case((jobs.c.status == Status.QUEUED, jobs.c.images), else_=0)), 0),
        func.coalesce(func.sum(case((and_(done, jobs.c.finished_at >= since), jobs.c.images), else_=0)), 0),
    )


def finished_by_group() -> Select[Any]:
    """Finished jobs by (platform, kind, outcome): how many, the images drawn (done, not picks: a pick
    reuses its parent's picture), and the GPU seconds spent (every attempt, failed ones too)."""
    drawn = and_(jobs.c.status == Status.DONE, jobs.c.kind != Kind.PICK)
    return (
        select(
            jobs.c.platform,
            jobs.c.kind,
            jobs.c.status,
            func.count(),
            func.coalesce(func.sum(case((drawn, jobs.c.images), else_=0)), 0),
            func.coalesce(func.sum(func.coalesce(jobs.c.gpu_seconds, 0.0)), 0.0),
        )
        .where(jobs.c.status.in_(FINAL))
        .group_by(jobs.c.platform, jobs.c.kind, jobs.c.status)
    )


def deliveries_by_state() -> Select[Any]:
    """Finished jobs by delivery state."""
    return select(jobs.c.delivery, func.count()).where(jobs.c.status.in_(FINAL)).group_by(jobs.c.delivery)


class seconds_between(FunctionElement[float]):
    """`end - start` in seconds as a float. SQL has no portable spelling of it, so it is compiled per
    dialect below (SQLite keeps text timestamps; Postgres has intervals)."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


@compiles(seconds_between, "postgresql")
def _seconds_postgres(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS DOUBLE PRECISION)"


def _histogram(
    value: ColumnElement[Any], where: ColumnElement[bool], buckets: Sequence[float]
) -> Select[Any]:
    """Cumulative bucket counts of `value` over the rows `where` holds, then their sum and count (one row)."""
    return select(
        *[func.coalesce(func.sum(case((and_(where, value <= bound), 1), else_=0)), 0) for bound in buckets],
        func.coalesce(func.sum(case((where, value), else_=0.0)), 0.0),
        func.coalesce(func.sum(case((where, 1), else_=0)), 0),
    )


def queue_wait_histogram(buckets: Sequence[float]) -> Select[Any]:
    """Seconds from enqueue to the first claim, of every job that started (picks never wait)."""
    started = and_(jobs.c.started_at.is_not(None), jobs.c.kind != Kind.PICK)
    return _histogram(seconds_between(jobs.c.created_at, jobs.c.started_at), started, buckets)


def render_seconds_histogram(buckets: Sequence[float]) -> Select[Any]:
    """Done jobs' GPU seconds (all their attempts)."""
    rendered = and_(jobs.c.status == Status.DONE, jobs.c.gpu_seconds.is_not(None))
    return _histogram(jobs.c.gpu_seconds, rendered, buckets)


def delivery_seconds_histogram(buckets: Sequence[float]) -> Select[Any]:
    """Seconds from finishing to the result posted in the chat, of every delivered job."""
    delivered = and_(jobs.c.delivered_at.is_not(None), jobs.c.finished_at.is_not(None))
    return _histogram(seconds_between(jobs.c.finished_at, jobs.c.delivered_at), delivered, buckets)
