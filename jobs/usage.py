"""Usage: who asked for what, where, when, and what it cost — read from the jobs table (it is the history).

`usage(engine, by="user", filters=...)` gives per-group counts (jobs, images, failures, cancellations),
mean and p95 wait and render times, and GPU-seconds; `recent_prompts` the newest prompts matching the
filters. Counting is done in SQL's WHERE and in Python over the filtered rows (only the needed columns):
the p95 must be exact on SQLite and Postgres alike, and SQLite has no percentile function.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.models import Job, Kind, Status, require_aware
from jobs.schema import jobs

GroupBy = Literal["total", "user", "guild", "channel", "day", "week", "model", "platform"]
GROUPS: tuple[str, ...] = ("total", "user", "guild", "channel", "day", "week", "model", "platform")


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which jobs to count; None means any. `since` inclusive, `until` exclusive, on created_at."""

    platform: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt: Select) -> Select:
        for column, value in (
            (jobs.c.platform, self.platform),
            (jobs.c.guild_id, self.guild_id),
            (jobs.c.channel_id, self.channel_id),
            (jobs.c.user_id, self.user_id),
            (jobs.c.model, self.model),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if self.since is not None:
            stmt = stmt.where(jobs.c.created_at >= require_aware(self.since, "since"))
        if self.until is not None:
            stmt = stmt.where(jobs.c.created_at < require_aware(self.until, "until"))
        return stmt


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: str  # the group: user id, guild id, "2026-11-25", "2026-W48", model name, or "total"
    label: str  # for people: the user's display name, else the key
    jobs: int
    images: int  # images asked for
    done: int
    failures: int
    cancellations: int
    queued_or_running: int
    mean_wait_s: float | None  # created → (last) start, jobs that started
    p95_wait_s: float | None
    mean_render_s: float | None  # start → done, jobs that finished
    p95_render_s: float | None
    gpu_seconds: float


_COLUMNS = (
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


def p95(values: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile: the smallest value at or above 95 % of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _key(row: Any, by: str) -> tuple[str, str]:
    if by == "user":
        return f"{row.platform}:{row.user_id}", row.user_name or row.user_id
    if by == "guild":
        return f"{row.platform}:{row.guild_id}", row.guild_id or "(direct)"
    if by == "channel":
        return f"{row.platform}:{row.channel_id}", row.channel_id or "(none)"
    if by == "day":
        day = row.created_at.date().isoformat()
        return day, day
    if by == "week":
        year, week, _ = row.created_at.isocalendar()
        return f"{year}-W{week:02d}", f"{year}-W{week:02d}"
    if by == "model":
        return row.model, row.model or "(default model)"
    if by == "platform":
        return row.platform, row.platform
    return "total", "total"


def summarize(rows: Iterable[Any], by: str) -> list[UsageRow]:
    groups: dict[str, list[Any]] = defaultdict(list)
    labels: dict[str, str] = {}
    for row in rows:
        key, label = _key(row, by)
        groups[key].append(row)
        labels.setdefault(key, label)
    result = []
    for key in sorted(groups):
        members = groups[key]
        rendered = [row for row in members if row.kind != Kind.PICK.value]  # picks render nothing
        waits = [(row.started_at - row.created_at).total_seconds() for row in rendered if row.started_at]
        renders = [
            (row.finished_at - row.started_at).total_seconds()
            for row in rendered
            if row.status == Status.DONE.value and row.started_at and row.finished_at
        ]
        statuses = [row.status for row in members]
        result.append(
            UsageRow(
                key=key,
                label=labels[key],
                jobs=len(members),
                images=sum(row.images for row in members),
                done=statuses.count(Status.DONE.value),
                failures=statuses.count(Status.FAILED.value),
                cancellations=statuses.count(Status.CANCELLED.value),
                queued_or_running=statuses.count(Status.QUEUED.value) + statuses.count(Status.RUNNING.value),
                mean_wait_s=_mean(waits),
                p95_wait_s=p95(waits),
                mean_render_s=_mean(renders),
                p95_render_s=p95(renders),
                gpu_seconds=sum(float(row.gpu_seconds or 0.0) for row in members),
            )
        )
    return result


async def usage(
    engine: AsyncEngine, *, by: GroupBy = "total", filters: UsageFilter | None = None
) -> list[UsageRow]:
    """Usage per group (see `GROUPS`), sorted by key; [] when nothing matches."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
    stmt = (filters or UsageFilter()).apply(select(*_COLUMNS))
    async with engine.connect() as conn:
        await conn.execution_options(sqlite_deferred=True)
        rows = (await conn.execute(stmt)).all()
    return summarize(rows, by)


async def recent_prompts(
    engine: AsyncEngine, *, filters: UsageFilter | None = None, limit: int = 50
) -> list[Job]:
    """The newest jobs matching the filters, newest first (prompt, who, where, options, outcome)."""
    stmt = (filters or UsageFilter()).apply(select(jobs)).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
    async with engine.connect() as conn:
        await conn.execution_options(sqlite_deferred=True)
        rows = (await conn.execute(stmt.limit(limit))).all()
    return [Job.from_row(row) for row in rows]
