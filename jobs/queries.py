"""Every statement on the queue's tables, each named for what it does and explained.

The queue's operations (`jobs/queue.py` and its parts) compose these; the reports' reads are beside them in
`jobs/report_queries.py`, and nothing outside `jobs/` builds SQL. Where Postgres and SQLite differ the
difference is here, beside its reason. Times are always bound from Python (`now`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Delete,
    Float,
    Insert,
    Integer,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from jobs.models import ACTIVE, EXPIRED_PROMPT, FINAL, Delivery, Kind, Status
from jobs.schema import UTCDateTime, bans, fair_users, images, jobs, spaces, web_sessions, workers


def upsert(table: Any, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """INSERT … ON CONFLICT for the engine at hand (both dialects spell it the same in SQLAlchemy)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def ping() -> Select[Any]:
    """The cheapest statement: is the database there (health checks)?"""
    return select(literal(1))


# --- enqueue -------------------------------------------------------------------------------------------


def lock_fair_user(dialect: str, platform: str, user_id: str) -> Insert:
    """Create the user's fairness row if missing (weight 1, no history) and return their weight and
    last finish tag. The upsert locks the row on Postgres until commit, so one user's enqueues run one
    at a time and their caps, quota and tags stay exact; SQLite's BEGIN IMMEDIATE already does that."""
    return (
        upsert(fair_users, dialect)
        .values(platform=platform, user_id=user_id, weight=1.0, last_finish_tag=0.0)
        .on_conflict_do_update(index_elements=["platform", "user_id"], set_={"weight": fair_users.c.weight})
        .returning(fair_users.c.weight, fair_users.c.last_finish_tag)
    )


def virtual_time() -> Select[Any]:
    """Start-time fair queueing's virtual time: the lowest tag still queued or running (the job in
    service), or, when the queue is idle, the highest finish tag ever given (SFQ's idle rule)."""
    active = select(func.min(jobs.c.fair_tag)).where(jobs.c.status.in_(ACTIVE)).scalar_subquery()
    idle = select(func.max(fair_users.c.last_finish_tag)).scalar_subquery()
    return select(func.coalesce(active, idle, 0.0))


def set_last_finish_tag(platform: str, user_id: str, tag: float) -> Update:
    """Remember where the user's last job ends in virtual time; their next job starts there or later."""
    return (
        update(fair_users)
        .where(fair_users.c.platform == platform, fair_users.c.user_id == user_id)
        .values(last_finish_tag=tag)
    )


def set_weight(dialect: str, platform: str, user_id: str, weight: float) -> Insert:
    """Give a user a share of the GPU relative to others (2.0: twice the images of a weight-1 user)."""
    return (
        upsert(fair_users, dialect)
        .values(platform=platform, user_id=user_id, weight=weight, last_finish_tag=0.0)
        .on_conflict_do_update(index_elements=["platform", "user_id"], set_={"weight": weight})
    )


def user_counts(platform: str, user_id: str) -> Select[Any]:
    """The user's jobs by status among queued and running (for the running and queued caps)."""
    return (
        select(jobs.c.status, func.count())
        .where(jobs.c.platform == platform, jobs.c.user_id == user_id, jobs.c.status.in_(ACTIVE))
        .group_by(jobs.c.status)
    )


def images_since(platform: str, user_id: str, since: datetime) -> Select[Any]:
    """Images the user's jobs since `since` count against the quota (`quota_images`: every candidate
    drawn, an upscale's cost; picks render nothing), but a job cancelled before it started cost nothing."""
    return select(func.coalesce(func.sum(jobs.c.quota_images), 0)).where(
        jobs.c.platform == platform,
        jobs.c.user_id == user_id,
        jobs.c.created_at >= since,
        jobs.c.kind != Kind.PICK.value,
        ~and_(jobs.c.status == Status.CANCELLED.value, jobs.c.started_at.is_(None)),
    )


def find_ban(platform: str, guild_id: str, user_id: str) -> Select[Any]:
    """A ban on this user here or on every guild/workspace of the platform ("")."""
    return select(bans).where(
        bans.c.platform == platform, bans.c.user_id == user_id, bans.c.guild_id.in_({guild_id, ""})
    )


def insert_job(values: dict[str, Any]) -> Insert:
    """Add one job; the returned row becomes the `Job` the frontend gets back."""
    return jobs.insert().values(**values).returning(jobs)


def notify_new_job(job_id: int) -> Any:
    """Postgres: wake listening generators (delivered at commit; a hint, polling is the guarantee)."""
    return select(func.pg_notify("imagine_jobs", str(job_id)))


# --- claim and leases ------------------------------------------------------------------------------------


@functools.cache
def claim(dialect: str) -> Update:
    """Take the fairest queued jobs up to `:max_images` images, in ONE statement, and lease them
    (binds: worker_id, max_images, now, lease_until; built once per dialect).

    `candidates` reads at most `max_images` jobs (each has ≥ 1 image) in fair order. On Postgres it
    locks them FOR UPDATE SKIP LOCKED: concurrent claimers skip each other's rows instead of waiting,
    so each job goes to exactly one claimer. SQLite has one writer at a time (BEGIN IMMEDIATE), so the
    plain sub-select is already exclusive. `budget` keeps the fair-order prefix whose images fit —
    always at least the first job, so a 9-image job is never starved by a smaller batch size (the
    worker splits it) — and never skips ahead to a smaller later job, which would break fairness.
    """
    max_images = bindparam("max_images", type_=Integer)
    now = bindparam("now", type_=UTCDateTime)
    candidates = (
        select(jobs.c.id, jobs.c.images, jobs.c.fair_tag)
        .where(jobs.c.status == Status.QUEUED.value, jobs.c.run_after <= now)
        .order_by(jobs.c.fair_tag, jobs.c.id)
        .limit(max_images)
    )
    if dialect == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    cte = candidates.cte("candidates")
    order = (cte.c.fair_tag, cte.c.id)
    budget = select(
        cte.c.id,
        func.row_number().over(order_by=order).label("n"),
        func.sum(cte.c.images).over(order_by=order).label("total"),
    ).cte("budget")
    chosen = select(budget.c.id).where(or_(budget.c.n == 1, budget.c.total <= max_images))
    return (
        update(jobs)
        .where(jobs.c.id.in_(chosen))
        .values(
            status=Status.RUNNING.value,
            lease_owner=bindparam("worker_id", type_=String),
            lease_expires_at=bindparam("lease_until", type_=UTCDateTime),
            attempts=jobs.c.attempts + 1,  # a claim is an attempt; `release` gives it back
            started_at=now,
            progress=0.0,
        )
        .returning(jobs)
    )


def extend_leases(job_ids: Collection[int], worker_id: str, lease_until: datetime, progress: float) -> Update:
    """Heartbeat: push the lease out and record progress on the jobs this worker still holds;
    returns which are held and which had a cancel requested meanwhile."""
    return (
        update(jobs)
        .where(jobs.c.id.in_(job_ids), jobs.c.status == Status.RUNNING.value, jobs.c.lease_owner == worker_id)
        .values(lease_expires_at=lease_until, progress=progress)
        .returning(jobs.c.id, jobs.c.cancel_requested)
    )


def held_job(job_id: int, worker_id: str) -> Select[Any]:
    """The job if this worker holds its lease (finish/fail check this first)."""
    return select(jobs).where(
        jobs.c.id == job_id, jobs.c.status == Status.RUNNING.value, jobs.c.lease_owner == worker_id
    )


@functools.cache
def mark_one_done() -> Update:
    """`mark_done` for one job, built once (binds: job_id, worker_id, now, b_gpu_seconds): the hot path
    of a generator finishing jobs one by one, where building the statement would cost as much as
    running it."""
    now = bindparam("now", type_=UTCDateTime)
    return (
        update(jobs)
        .where(
            jobs.c.id == bindparam("job_id", type_=BigInteger),
            jobs.c.status == Status.RUNNING.value,
            jobs.c.lease_owner == bindparam("worker_id", type_=String),
        )
        .values(
            status=case((jobs.c.cancel_requested, Status.CANCELLED.value), else_=Status.DONE.value),
            finished_at=now,
            gpu_seconds=func.coalesce(jobs.c.gpu_seconds, 0.0) + bindparam("b_gpu_seconds", type_=Float),
            progress=1.0,
            lease_owner=None,
            lease_expires_at=None,
            error=None,
            delivery=Delivery.PENDING.value,
            delivery_next_try_at=now,
        )
        .returning(jobs)
    )


def mark_done(job_gpu_seconds: dict[int, float], worker_id: str, now: datetime) -> Update:
    """The worker stored the images: its jobs are done (or cancelled, if that was asked meanwhile)
    and wait for delivery. Guarded by the lease, so jobs the worker lost are left alone."""
    return (
        update(jobs)
        .where(
            jobs.c.id.in_(job_gpu_seconds),
            jobs.c.status == Status.RUNNING.value,
            jobs.c.lease_owner == worker_id,
        )
        .values(
            status=case((jobs.c.cancel_requested, Status.CANCELLED.value), else_=Status.DONE.value),
            finished_at=now,
            gpu_seconds=func.coalesce(jobs.c.gpu_seconds, 0.0) + case(job_gpu_seconds, value=jobs.c.id),
            progress=1.0,
            lease_owner=None,
            lease_expires_at=None,
            error=None,  # a failed attempt before this one is history (error_detail keeps it)
            delivery=Delivery.PENDING.value,
            delivery_next_try_at=now,
        )
        .returning(jobs)
    )


def set_drawn(job_id: int, candidates: int, images: int) -> Update:
    """The generator chose how many candidates to draw per image (the device's default): the job
    counts every image it drew."""
    return (
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(candidates=candidates, quota_images=images * candidates)
        .returning(jobs)
    )


def insert_images() -> Insert:
    """Store jobs' grids (index -1) and images with their VQGAN tokens (execute with a list of rows)."""
    return images.insert()


@functools.cache
def count_worker_output() -> Update:
    """Credit the worker's registry row (admin views show jobs and images per worker); built once
    (binds: b_worker_id, b_jobs_done, b_images_done, b_now; a bind may not share a column's name)."""
    return (
        update(workers)
        .where(workers.c.worker_id == bindparam("b_worker_id", type_=String))
        .values(
            jobs_done=workers.c.jobs_done + bindparam("b_jobs_done", type_=Integer),
            images_done=workers.c.images_done + bindparam("b_images_done", type_=Integer),
            last_seen_at=bindparam("b_now", type_=UTCDateTime),
        )
    )


def end_attempt(job_id: int, worker_id: str, attempts: int, values: dict[str, Any]) -> Update:
    """Close the worker's attempt (retry, fail, cancel) if it still holds the lease and nobody moved
    the job since it was read (`attempts` unchanged)."""
    return (
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status == Status.RUNNING.value,
            jobs.c.lease_owner == worker_id,
            jobs.c.attempts == attempts,
        )
        .values(lease_owner=None, lease_expires_at=None, **values)
        .returning(jobs)
    )


def release(job_ids: Collection[int], worker_id: str) -> Update:
    """Graceful shutdown: hand held jobs back, the attempt not counted, claimable at once."""
    return (
        update(jobs)
        .where(jobs.c.id.in_(job_ids), jobs.c.status == Status.RUNNING.value, jobs.c.lease_owner == worker_id)
        .values(
            status=Status.QUEUED.value,
            attempts=jobs.c.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            progress=0.0,
        )
        .returning(jobs.c.id)
    )


def reap_cancelled(now: datetime) -> Update:
    """A dead worker's job whose cancel was requested: just cancelled."""
    return _reap(now, jobs.c.cancel_requested).values(
        status=Status.CANCELLED.value,
        finished_at=now,
        delivery=Delivery.PENDING.value,
        delivery_next_try_at=now,
    )


def reap_exhausted(now: datetime, max_attempts: int) -> Update:
    """A dead worker's job that has used every attempt: failed, and the user is told why."""
    return _reap(now, ~jobs.c.cancel_requested, jobs.c.attempts >= max_attempts).values(
        status=Status.FAILED.value,
        finished_at=now,
        error=literal("the worker rendering this died ")
        + cast(jobs.c.attempts, String)
        + " times; giving up",
        error_detail="lease expired on every attempt",
        delivery=Delivery.PENDING.value,
        delivery_next_try_at=now,
    )


def reap_requeue(now: datetime, max_attempts: int) -> Update:
    """A dead worker's job with attempts left: back in the queue, claimable at once."""
    return _reap(now, ~jobs.c.cancel_requested, jobs.c.attempts < max_attempts).values(
        status=Status.QUEUED.value,
        progress=0.0,
        error_detail=literal("lease of ") + jobs.c.lease_owner + " expired",
    )


def _reap(now: datetime, *conditions: Any) -> Update:
    return (
        update(jobs)
        .where(jobs.c.status == Status.RUNNING.value, jobs.c.lease_expires_at < now, *conditions)
        .values(lease_owner=None, lease_expires_at=None)
        .returning(jobs)
    )


# --- cancel ----------------------------------------------------------------------------------------------


def cancel_queued(job_id: int, now: datetime) -> Update:
    """Cancel a job nobody is rendering: at once."""
    return (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == Status.QUEUED.value)
        .values(
            status=Status.CANCELLED.value,
            finished_at=now,
            delivery=Delivery.PENDING.value,
            delivery_next_try_at=now,
        )
        .returning(jobs)
    )


def request_cancel(job_id: int) -> Update:
    """Ask the worker rendering a job to drop it (it sees the flag at its next heartbeat)."""
    return (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == Status.RUNNING.value)
        .values(cancel_requested=True)
        .returning(jobs)
    )


# --- reading jobs ----------------------------------------------------------------------------------------


def job_by_id(job_id: int, *, lock: bool = False, dialect: str = "") -> Select[Any]:
    """One job (locked FOR UPDATE on Postgres when about to change it)."""
    stmt = select(jobs).where(jobs.c.id == job_id)
    return stmt.with_for_update() if lock and dialect == "postgresql" else stmt


def jobs_for_user(
    platform: str, user_id: str, limit: int, statuses: Collection[str] | None, *, with_pictures: bool = False
) -> Select[Any]:
    """A user's most recent jobs, newest first (only those with stored pictures, for a gallery)."""
    stmt = select(jobs).where(jobs.c.platform == platform, jobs.c.user_id == user_id)
    if statuses:
        stmt = stmt.where(jobs.c.status.in_(statuses))
    if with_pictures:
        stmt = stmt.where(select(images.c.job_id).where(images.c.job_id == jobs.c.id).exists())
    return stmt.order_by(jobs.c.id.desc()).limit(limit)


def queue_ahead(fair_tag: float, job_id: int) -> Select[Any]:
    """For a position and ETA, in one round trip: queued jobs (and their images) claimed before this
    one, and the images still to draw in running jobs."""
    ahead = or_(jobs.c.fair_tag < fair_tag, and_(jobs.c.fair_tag == fair_tag, jobs.c.id < job_id))
    queued = jobs.c.status == Status.QUEUED.value
    return select(
        select(func.count()).where(queued, ahead).scalar_subquery(),
        select(func.coalesce(func.sum(jobs.c.images), 0)).where(queued, ahead).scalar_subquery(),
        select(func.coalesce(func.sum(jobs.c.images * (1.0 - jobs.c.progress)), 0.0))
        .where(jobs.c.status == Status.RUNNING.value)
        .scalar_subquery(),
    )


def job_images(job_id: int, index: int | None = None) -> Select[Any]:
    """A job's stored images (the grid is index -1), in order."""
    stmt = select(images).where(images.c.job_id == job_id)
    if index is not None:
        stmt = stmt.where(images.c.index == index)
    return stmt.order_by(images.c.index)


# --- delivery --------------------------------------------------------------------------------------------


def take_deliveries(dialect: str, limit: int, now: datetime, hold_until: datetime) -> Update:
    """Reserve finished jobs whose result is due to be posted: push their next try to `hold_until`
    so another deliverer does not post them too (SKIP LOCKED on Postgres, as in `claim`)."""
    due = (
        select(jobs.c.id)
        .where(
            jobs.c.delivery == Delivery.PENDING.value,
            jobs.c.delivery_next_try_at <= now,
            jobs.c.status.in_(FINAL),
        )
        .order_by(jobs.c.delivery_next_try_at, jobs.c.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    cte = due.cte("due")
    return (
        update(jobs)
        .where(jobs.c.id.in_(select(cte.c.id)))
        .values(delivery_next_try_at=hold_until, delivery_attempts=jobs.c.delivery_attempts + 1)
        .returning(jobs)
    )


def set_delivery(job_id: int, values: dict[str, Any]) -> Update:
    """Record a delivery outcome or message refs on one job."""
    return update(jobs).where(jobs.c.id == job_id).values(**values).returning(jobs)


# --- workers ---------------------------------------------------------------------------------------------


def worker_seen(dialect: str, values: dict[str, Any]) -> Insert:
    """Register a generator or refresh its last-seen time. Its counters (kept up by `finish`) restart
    only when it reports a new `started_at` (a restarted process)."""
    set_: dict[str, Any] = {k: v for k, v in values.items() if k != "worker_id"}
    if "started_at" in values:
        restarted = workers.c.started_at != values["started_at"]
        set_["jobs_done"] = case((restarted, 0), else_=workers.c.jobs_done)
        set_["images_done"] = case((restarted, 0), else_=workers.c.images_done)
    return (
        upsert(workers, dialect)
        .values(**{"started_at": values["last_seen_at"], "jobs_done": 0, "images_done": 0, **values})
        .on_conflict_do_update(index_elements=["worker_id"], set_=set_)
    )


def workers_seen_since(since: datetime) -> Select[Any]:
    """The registry's rows of generators heard from since `since`."""
    return select(workers).where(workers.c.last_seen_at >= since).order_by(workers.c.worker_id)


def forget_worker(worker_id: str) -> Delete:
    """A generator that stopped cleanly leaves the registry (its jobs and images stay counted on the jobs)."""
    return delete(workers).where(workers.c.worker_id == worker_id)


# --- guild/workspace settings and bans -------------------------------------------------------------------


def space_by_id(platform: str, guild_id: str) -> Select[Any]:
    return select(spaces).where(spaces.c.platform == platform, spaces.c.guild_id == guild_id)


def save_space(dialect: str, values: dict[str, Any]) -> Insert:
    """Create or replace one guild's/workspace's settings."""
    keys = {k: v for k, v in values.items() if k not in ("platform", "guild_id")}
    return (
        upsert(spaces, dialect)
        .values(**values)
        .on_conflict_do_update(index_elements=["platform", "guild_id"], set_=keys)
    )


def add_ban(dialect: str, values: dict[str, Any]) -> Insert:
    """Ban a user (again: the newer reason wins)."""
    keys = {k: v for k, v in values.items() if k in ("reason", "banned_by", "created_at")}
    return (
        upsert(bans, dialect)
        .values(**values)
        .on_conflict_do_update(index_elements=["platform", "guild_id", "user_id"], set_=keys)
    )


def remove_ban(platform: str, guild_id: str, user_id: str) -> Delete:
    return delete(bans).where(
        bans.c.platform == platform, bans.c.guild_id == guild_id, bans.c.user_id == user_id
    )


def list_bans(platform: str, guild_id: str | None) -> Select[Any]:
    stmt = select(bans).where(bans.c.platform == platform)
    if guild_id is not None:
        stmt = stmt.where(bans.c.guild_id.in_({guild_id, ""}))
    return stmt.order_by(bans.c.created_at)


# --- retention and forgetting pictures -------------------------------------------------------------------


def _finished_before(cutoff: datetime) -> Any:
    """Jobs created before `cutoff` that are over and no longer wait for delivery (nobody needs them)."""
    return and_(
        jobs.c.created_at < cutoff, jobs.c.status.in_(FINAL), jobs.c.delivery != Delivery.PENDING.value
    )


def finished_jobs_with_images(cutoff: datetime, limit: int) -> Select[Any]:
    """Up to `limit` finished jobs older than `cutoff` that still have stored pictures."""
    has_images = exists().where(images.c.job_id == jobs.c.id)
    return select(jobs.c.id).where(_finished_before(cutoff), has_images).limit(limit)


def finished_jobs_with_prompts(cutoff: datetime, limit: int) -> Select[Any]:
    """Up to `limit` finished jobs older than `cutoff` whose prompt is not yet forgotten."""
    remembered = (jobs.c.prompt != EXPIRED_PROMPT) | (jobs.c.prompt_normalized != EXPIRED_PROMPT)
    return select(jobs.c.id).where(_finished_before(cutoff), remembered).limit(limit)


def delete_images_of(job_ids: Collection[int]) -> Delete:
    """Forget these jobs' pictures (grid, images, codes); their jobs rows, the usage history, stay."""
    return delete(images).where(images.c.job_id.in_(job_ids))


def blank_prompts(job_ids: Collection[int]) -> Update:
    """Forget these jobs' prompts (as typed and normalized)."""
    return (
        update(jobs)
        .where(jobs.c.id.in_(job_ids))
        .values(prompt=EXPIRED_PROMPT, prompt_normalized=EXPIRED_PROMPT)
    )


# --- dashboard sessions ----------------------------------------------------------------------------------


def insert_session() -> Insert:
    return insert(web_sessions)


def live_session(id_hash: str, now: datetime) -> Select[Any]:
    return select(web_sessions).where(web_sessions.c.id_hash == id_hash, web_sessions.c.expires_at > now)


def delete_session(id_hash: str) -> Delete:
    return delete(web_sessions).where(web_sessions.c.id_hash == id_hash)


def delete_expired_sessions(now: datetime) -> Delete:
    return delete(web_sessions).where(web_sessions.c.expires_at <= now)
