"""Reports over the jobs table, which is the history: usage per group, the history search, the queue's
shape right now, the counters behind /metrics. Part of `Queue` (see `jobs/queue.py`); the statements are
`jobs/report_queries.py`.

Bans, cancels and guild/workspace settings are not here: admins change those through the queue's own
operations, exactly as the chat admin commands do. The one admin write here is `delete_images`
(forget a job's pictures, keep its usage row).

Usage counting is done in SQL's WHERE and in Python over the filtered rows (only the needed columns):
the p95 must be exact on SQLite and Postgres alike, and SQLite has no percentile function.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from jobs import queries as q
from jobs import report_queries as rq
from jobs.base import QueueBase
from jobs.models import Ban, Job, JobSearch, Kind, SpaceSettings, Status, UsageFilter

GroupBy = Literal["total", "user", "guild", "channel", "day", "week", "model", "platform"]
GROUPS: tuple[GroupBy, ...] = ("total", "user", "guild", "channel", "day", "week", "model", "platform")


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


@dataclass(frozen=True, slots=True)
class Depth:
    """Queued and running work for one user or one guild/workspace."""

    platform: str
    key: str  # user id or guild id
    name: str  # display name (users) or "" (guilds)
    queued_jobs: int
    queued_images: int
    running_jobs: int


@dataclass(frozen=True, slots=True)
class Bucketed:
    """A histogram counted in SQL: (upper bound, observations at or below it), their sum and count."""

    buckets: list[tuple[float, int]]
    sum: float
    count: int

    @classmethod
    def from_row(cls, row: Sequence[Any], bounds: Sequence[float]) -> Bucketed:
        counts = row[: len(bounds)]
        return cls([(b, int(c)) for b, c in zip(bounds, counts, strict=True)], float(row[-2]), int(row[-1]))


@dataclass(frozen=True, slots=True)
class Finished:
    """Finished jobs of one (platform, kind, outcome): how many, images drawn, GPU seconds spent."""

    platform: str
    kind: str
    outcome: str  # done, failed or cancelled
    jobs: int
    images: int
    gpu_seconds: float


@dataclass(frozen=True, slots=True)
class Counters:
    jobs_by_status: dict[str, int]
    queued_images: int
    images_done_since: int  # in the rate window
    finished: list[Finished]
    delivery_by_state: dict[str, int]  # among finished jobs
    queue_wait_seconds: Bucketed
    render_seconds: Bucketed
    delivery_seconds: Bucketed


class ReportsMixin(QueueBase):
    """Usage, history, the queue's shape and counters: reads only, plus `delete_images`."""

    async def usage(self, *, by: GroupBy = "total", filters: UsageFilter | None = None) -> list[UsageRow]:
        """Usage per group (see `GROUPS`), sorted by key; [] when nothing matches."""
        if by not in GROUPS:
            raise ValueError(f"by must be one of {', '.join(GROUPS)}, not {by!r}")
        async with self._reading() as conn:
            rows = (await conn.execute(rq.usage_rows(filters or UsageFilter()))).all()
        return summarize(rows, by)

    async def recent_prompts(self, *, filters: UsageFilter | None = None, limit: int = 50) -> list[Job]:
        """The newest jobs matching the filters, newest first (prompt, who, where, options, outcome)."""
        async with self._reading() as conn:
            rows = (await conn.execute(rq.recent_jobs(filters or UsageFilter(), limit))).all()
        return [Job.from_row(row) for row in rows]

    async def usage_jobs(self, filters: UsageFilter, *, batch: int = 1000) -> AsyncGenerator[Job]:
        """Every job `usage` counts for `filters`, oldest first, streamed `batch` rows at a time."""
        async with self._reading() as conn:
            result = await conn.stream(rq.usage_jobs(filters).execution_options(yield_per=batch))
            async for row in result:
                yield Job.from_row(row)

    async def search_jobs(self, search: JobSearch) -> tuple[list[Job], int]:
        """One page of matching jobs, newest first, and how many match in all."""
        async with self._reading() as conn:
            rows = (await conn.execute(rq.search_page(search))).all()
            total = (await conn.execute(rq.search_count(search))).scalar_one()
        return [Job.from_row(row) for row in rows], int(total)

    async def image_indices(self, job_id: int) -> list[int]:
        """Which pictures of a job are stored (-1 is the grid), without loading their bytes."""
        async with self._reading() as conn:
            return list((await conn.execute(rq.image_indices(job_id))).scalars())

    async def image_indices_of(self, job_ids: Sequence[int]) -> dict[int, dict[int, float | None]]:
        """Each job's stored pictures (-1 is the grid) with their CLIP scores (None: not ranked); a job
        whose pictures were deleted is absent."""
        stored: dict[int, dict[int, float | None]] = {}
        if not job_ids:
            return stored
        async with self._reading() as conn:
            for row in await conn.execute(rq.image_indices_of(job_ids)):
                stored.setdefault(row.job_id, {})[row.index] = row.score
        return stored

    async def image_scores(self, job_id: int) -> dict[int, float | None]:
        """Each stored image's CLIP score by index (None: not ranked), without loading the pictures."""
        async with self._reading() as conn:
            return {row.index: row.score for row in (await conn.execute(rq.image_scores(job_id))).all()}

    async def delete_images(self, job_id: int) -> int:
        """Delete a job's stored pictures; its `jobs` row (the usage record) stays. Returns how many went."""
        async with self._engine.begin() as conn:
            return (await conn.execute(q.delete_images_of([job_id]))).rowcount

    async def depth_by_user(self, limit: int = 50) -> list[Depth]:
        async with self._reading() as conn:
            rows = (await conn.execute(rq.depth_by_user(limit))).all()
        return [
            Depth(r.platform, r.user_id, r.name or "", r.queued_jobs, r.queued_images, r.running_jobs)
            for r in rows
        ]

    async def depth_by_guild(self, limit: int = 50) -> list[Depth]:
        async with self._reading() as conn:
            rows = (await conn.execute(rq.depth_by_guild(limit))).all()
        return [
            Depth(r.platform, r.guild_id, "", r.queued_jobs, r.queued_images, r.running_jobs) for r in rows
        ]

    async def jobs_with_status(self, status: Status, limit: int = 100) -> list[Job]:
        """Running and queued jobs oldest first (the batch in progress), any other status newest first."""
        async with self._reading() as conn:
            rows = (await conn.execute(rq.jobs_with_status(status, limit))).all()
        return [Job.from_row(row) for row in rows]

    async def all_bans(self) -> list[Ban]:
        """Every ban on every platform, newest first (`bans` lists one platform)."""
        async with self._reading() as conn:
            return [Ban(**row._mapping) for row in await conn.execute(rq.all_bans())]

    async def all_spaces(self) -> list[SpaceSettings]:
        """Every guild/workspace with settings of its own."""
        async with self._reading() as conn:
            keys = (await conn.execute(rq.spaces_with_settings())).all()
            return [await self._space(conn, row.platform, row.guild_id) for row in keys]

    async def counters(
        self,
        *,
        since: datetime,
        wait_buckets: Sequence[float],
        render_buckets: Sequence[float],
        delivery_buckets: Sequence[float],
    ) -> Counters:
        """Everything `/metrics` exposes, in a few aggregate statements (no rows loaded)."""
        async with self._reading() as conn:
            by_status = (await conn.execute(rq.jobs_by_status())).all()
            queued_images, done_since = (await conn.execute(rq.image_totals(since))).one()
            finished = (await conn.execute(rq.finished_by_group())).all()
            delivery = (await conn.execute(rq.deliveries_by_state())).all()
            wait = (await conn.execute(rq.queue_wait_histogram(wait_buckets))).one()
            render = (await conn.execute(rq.render_seconds_histogram(render_buckets))).one()
            posted = (await conn.execute(rq.delivery_seconds_histogram(delivery_buckets))).one()
        return Counters(
            jobs_by_status={row[0]: int(row[1]) for row in by_status},
            queued_images=int(queued_images),
            images_done_since=int(done_since),
            finished=[
                Finished(row[0], row[1], row[2], int(row[3]), int(row[4]), float(row[5])) for row in finished
            ],
            delivery_by_state={row[0]: int(row[1]) for row in delivery},
            queue_wait_seconds=Bucketed.from_row(wait, wait_buckets),
            render_seconds=Bucketed.from_row(render, render_buckets),
            delivery_seconds=Bucketed.from_row(posted, delivery_buckets),
        )


# --- the usage summary (pure Python over the filtered rows) ----------------------------------------------


def p95(values: Sequence[float]) -> float | None:
    """Nearest-rank 95th percentile: the smallest value at or above 95 % of the values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _key(row: Any, by: GroupBy) -> tuple[str, str]:
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


def summarize(rows: Iterable[Any], by: GroupBy) -> list[UsageRow]:
    groups: dict[str, list[Any]] = defaultdict(list)
    labels: dict[str, str] = {}
    for row in rows:
        key, label = _key(row, by)
        groups[key].append(row)
        labels.setdefault(key, label)
    result = []
    for key in sorted(groups):
        members = groups[key]
        rendered = [row for row in members if row.kind != Kind.PICK]  # picks render nothing
        waits = [(row.started_at - row.created_at).total_seconds() for row in rendered if row.started_at]
        renders = [
            (row.finished_at - row.started_at).total_seconds()
            for row in rendered
            if row.status == Status.DONE and row.started_at and row.finished_at
        ]
        statuses = [row.status for row in members]
        result.append(
            UsageRow(
                key=key,
                label=labels[key],
                jobs=len(members),
                images=sum(row.images for row in members),
                done=statuses.count(Status.DONE),
                failures=statuses.count(Status.FAILED),
                cancellations=statuses.count(Status.CANCELLED),
                queued_or_running=statuses.count(Status.QUEUED) + statuses.count(Status.RUNNING),
                mean_wait_s=_mean(waits),
                p95_wait_s=p95(waits),
                mean_render_s=_mean(renders),
                p95_render_s=p95(renders),
                gpu_seconds=sum(float(row.gpu_seconds or 0.0) for row in members),
            )
        )
    return result
