"""The queue's operations: what frontends (enqueue, cancel, position) and generators (claim, heartbeat,
finish, fail, release, deliveries) call. Each operation is one transaction; statements live in
`jobs/queries.py`. Every method takes an optional `now` (aware UTC) so tests control time.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from jobs import errors
from jobs import queries as q
from jobs.base import RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_SECONDS, Limits
from jobs.base import now_or_utcnow as _now
from jobs.delivery import DELIVERY_HOLD_SECONDS, DeliveryMixin
from jobs.durations import duration
from jobs.models import (
    GRID_INDEX,
    Delivery,
    Enqueued,
    EnqueueRequest,
    Job,
    Kind,
    RenderedImage,
    SpaceSettings,
    Status,
    StoredImage,
    WorkerInfo,
)
from jobs.options import JobOptions
from jobs.reports import ReportsMixin
from jobs.retention import RetentionMixin
from jobs.sessions import SessionsMixin
from jobs.spaces import SpacesMixin
from jobs.validation import check_requester, clean_prompt, find_blocked_word
from jobs.workers import NOTIFY_CHANNEL, SEEN_WINDOW_SECONDS, WorkersMixin

__all__ = [
    "DELIVERY_HOLD_SECONDS",
    "NOTIFY_CHANNEL",
    "RETRY_BACKOFF_MAX_SECONDS",
    "RETRY_BACKOFF_SECONDS",
    "Heartbeat",
    "Limits",
    "Queue",
    "Rendered",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One job's result, for `finish_many`."""

    job_id: int
    grid_png: bytes
    images: Sequence[RenderedImage | tuple[bytes, bytes]]  # (png, 256 VQGAN tokens) per image
    gpu_seconds: float
    candidates: int | None = None  # drawn per shown image, when the generator chose (quota: all drawn)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a heartbeat learned: jobs to stop rendering."""

    cancel_requested: frozenset[int]  # call `cancelled(job_id, worker_id)` for these
    lost: frozenset[int]  # no longer this worker's (lease expired and reaped): drop silently


def _midnight(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _stored_image(row: Any) -> StoredImage:
    # by key: a Row's `.index` is the tuple method, not the column
    m = row._mapping
    return StoredImage(m["job_id"], m["index"], m["png"], m["tokens"], m["score"])


class Queue(DeliveryMixin, SpacesMixin, WorkersMixin, ReportsMixin, RetentionMixin, SessionsMixin):
    """The job queue on one database (SQLite or Postgres). Create once, share; it holds no state.

    `await Queue.open(settings)` (schema checked), `Queue.connect(settings)`, or `Queue(engine=…, limits=…)`
    in tests; `await queue.close()` when done. Operations by caller:
    frontends: enqueue, position, cancel, get_job, jobs_for_user, images/image;
    generators: claim, heartbeat, finish/finish_many, fail, cancelled, release, reap, worker_heartbeat,
    listen; deliverers: due_deliveries, mark_delivered, delivery_failed, record_message_refs
    (jobs/delivery.py); admins: get_settings, update_settings, ban, unban, bans, set_weight
    (jobs/spaces.py), workers_alive (jobs/workers.py); reports: usage, recent_prompts, search_jobs,
    depth_by_user/guild, counters, delete_images (jobs/reports.py); apply_retention (jobs/retention.py).
    """

    # --- enqueue -------------------------------------------------------------------------------------------

    async def enqueue(self, request: EnqueueRequest, *, now: datetime | None = None) -> Enqueued:
        """Validate and queue one request; raise a `Refused` subclass (nothing written) if it may not run."""
        now = _now(now)
        check_requester(
            request.platform, request.user_id, request.user_name, request.guild_id, request.channel_id
        )
        prompt = request.prompt
        if request.kind is Kind.IMAGINE or prompt.strip():
            prompt = clean_prompt(prompt, max_length=self.limits.max_prompt_length)
        options = None
        if request.kind is Kind.IMAGINE:
            options = JobOptions.parse(request.options, models=self.limits.models)
        async with self._engine.begin() as conn:
            if request.kind is not Kind.IMAGINE:
                prompt, options = await self._from_parent(conn, request, prompt)
            assert options is not None
            space = await self._space(conn, request.platform, request.guild_id)
            candidates, cost = self._cost(request.kind, options, space)
            weight, last_finish = await self._check_allowed(conn, request, prompt, cost, space, now)
            tag = await self._fair_tag(
                conn, request.platform, request.user_id, max(cost, 1), weight, last_finish
            )
            is_pick = request.kind is Kind.PICK
            values = self._job_values(request, prompt, options, tag, now, is_pick)
            row = (
                await conn.execute(q.insert_job({**values, "candidates": candidates, "quota_images": cost}))
            ).one()
            job = Job.from_row(row)
            if is_pick:
                await self._copy_picked_image(conn, job)
            if self.is_postgres and not is_pick:
                await conn.execute(q.notify_new_job(job.id))
            position, eta = await self._position(conn, job, now)
        log.info("job enqueued", extra={"action": "job_enqueued", "job_id": job.id, "position": position})
        return Enqueued(job=job, position=position, eta=eta)

    def _cost(self, kind: Kind, options: JobOptions, space: SpaceSettings) -> tuple[int | None, int]:
        """(candidates per image, quota images): a draw costs every candidate it draws (when the device
        decides, one each until the generator says what it drew), an upscale its fixed cost, a pick 0."""
        if kind is Kind.PICK:
            return None, 0
        if kind is Kind.UPSCALE:
            return None, self.limits.upscale_quota_images
        candidates = space.candidates_per_image or self.limits.candidates_per_image
        return candidates, options.images * (candidates or 1)

    async def _from_parent(
        self, conn: AsyncConnection, request: EnqueueRequest, prompt: str
    ) -> tuple[str, JobOptions]:
        """Reroll/variation/pick start from the parent's prompt and options (a new seed unless given)."""
        parent_row = (await conn.execute(q.job_by_id(request.parent_job_id or 0))).one_or_none()
        if parent_row is None:
            raise errors.BadParent(f"job {request.parent_job_id} does not exist")
        parent = Job.from_row(parent_row)
        if parent.kind is Kind.UPSCALE and request.kind is not Kind.PICK:
            raise errors.BadParent(
                f"job {parent.id} is an upscaled picture: start from the grid it came from"
            )
        if request.kind in (Kind.VARIATION, Kind.PICK, Kind.UPSCALE):
            if parent.status is not Status.DONE:
                raise errors.BadParent(f"job {parent.id} has no images yet (it is {parent.status})")
            index = request.image_index
            if index is None or not 0 <= index < parent.images:
                raise errors.BadParent(f"job {parent.id} has images 0 to {parent.images - 1}, not {index}")
        # every option of the parent but its seed (a new one is drawn unless the request names one)
        inherited = {name: value for name, value in parent.options.columns().items() if name != "seed"}
        raw = {**inherited, **request.options}
        if request.kind in (Kind.PICK, Kind.UPSCALE):
            raw["images"] = 1
        options = JobOptions.parse(raw, models=self.limits.models)
        return prompt or parent.prompt_normalized, options

    async def _check_allowed(
        self,
        conn: AsyncConnection,
        request: EnqueueRequest,
        prompt: str,
        cost: int,
        space: SpaceSettings,
        now: datetime,
    ) -> tuple[float, float]:
        """Raise the first refusal that applies; return the user's fairness weight and last finish tag."""
        if space.allowed_channels and request.channel_id not in space.allowed_channels:
            raise errors.ChannelNotAllowed(
                "/imagine is not allowed in this channel; the admins allow it in: "
                + ", ".join(space.allowed_channels)
            )
        if (await conn.execute(q.find_ban(request.platform, request.guild_id, request.user_id))).first():
            raise errors.Banned(
                "you are banned from /imagine here; ask an admin if you think this is a mistake"
            )
        word = find_blocked_word(prompt, self.limits.blocked_words)
        if word is not None:  # the operator's list: every server, workspace and DM
            raise errors.BlockedWord(f"your prompt contains {word!r}, which this bot blocks: rephrase it")
        word = find_blocked_word(prompt, space.blocked_words)
        if word is not None:
            raise errors.BlockedWord(f"your prompt contains {word!r}, which this server blocks: rephrase it")
        # Lock the user's fairness row first (Postgres): their concurrent enqueues then serialize,
        # so the caps and the quota below are exact.
        fair = (await conn.execute(q.lock_fair_user(self._dialect, request.platform, request.user_id))).one()
        if request.kind is Kind.PICK:
            return fair.weight, fair.last_finish_tag  # renders nothing: no cap or quota
        counts = dict((await conn.execute(q.user_counts(request.platform, request.user_id))).all())
        running_cap = space.max_running_per_user or self.limits.max_running_per_user
        if counts.get(Status.RUNNING.value, 0) >= running_cap:
            raise errors.TooManyRunning(
                f"you already have {running_cap} pictures being drawn, the most allowed at once: "
                "wait for one to finish"
            )
        queued_cap = space.max_queued_per_user or self.limits.max_queued_per_user
        if counts.get(Status.QUEUED.value, 0) >= queued_cap:
            raise errors.TooManyQueued(
                f"you already have {queued_cap} prompts waiting, the most allowed: "
                "wait for them or cancel one"
            )
        quota = (
            self.limits.daily_quota_images if space.daily_quota_images is None else space.daily_quota_images
        )
        if quota:
            midnight = _midnight(now)
            used = (
                await conn.execute(q.images_since(request.platform, request.user_id, midnight))
            ).scalar_one()
            if used + cost > quota:
                resets_at = midnight + timedelta(days=1)
                asked = f"an upscale, which counts as {cost}" if request.kind is Kind.UPSCALE else str(cost)
                raise errors.QuotaExceeded(
                    f"you have used {used} of your {quota} images for today and asked for {asked}; "
                    f"the quota resets at 00:00 UTC (in {duration(resets_at - now)})",
                    resets_at=resets_at,
                )
        return fair.weight, fair.last_finish_tag

    async def _fair_tag(
        self,
        conn: AsyncConnection,
        platform: str,
        user_id: str,
        images: int,
        weight: float,
        last_finish: float,
    ) -> float:
        """Start-time fair queueing: start = max(virtual time, the user's last finish); the user's next
        job starts at start + images / weight. Claims take the lowest start tag first, so a user with
        500 queued jobs has tags far in the future and a newcomer starts at the head."""
        virtual = (await conn.execute(q.virtual_time())).scalar_one()
        start = max(float(virtual), float(last_finish))
        await conn.execute(q.set_last_finish_tag(platform, user_id, start + images / max(weight, 1e-6)))
        return start

    def _job_values(
        self,
        request: EnqueueRequest,
        prompt: str,
        options: JobOptions,
        tag: float,
        now: datetime,
        is_pick: bool,
    ) -> dict[str, Any]:
        refs = request.refs
        return {
            "kind": request.kind.value,
            "parent_job_id": request.parent_job_id,
            "image_index": request.image_index,
            "platform": request.platform,
            "guild_id": request.guild_id,
            "channel_id": request.channel_id,
            "user_id": request.user_id,
            "user_name": request.user_name,
            "prompt": request.prompt
            if request.prompt.strip()
            else prompt,  # as typed; a reroll's: the parent's
            "prompt_normalized": prompt,
            **options.columns(),
            # A pick renders nothing: it is born done, with the parent's image, waiting for delivery.
            "status": Status.DONE.value if is_pick else Status.QUEUED.value,
            "fair_tag": tag,
            "attempts": 0,
            "run_after": now,
            "progress": 1.0 if is_pick else 0.0,
            "cancel_requested": False,
            "created_at": now,
            "started_at": now if is_pick else None,
            "finished_at": now if is_pick else None,
            "gpu_seconds": 0.0 if is_pick else None,
            "delivery": Delivery.PENDING.value,
            "delivery_attempts": 0,
            "delivery_failures": 0,
            "delivery_next_try_at": now if is_pick else None,
            "interaction_token": refs.interaction_token,
            "interaction_created_at": refs.interaction_created_at,
            "response_url": refs.response_url,
            "placeholder_message_id": refs.placeholder_message_id,
            "final_message_id": refs.final_message_id,
            "platform_refs": dict(refs.extra),
        }

    async def _copy_picked_image(self, conn: AsyncConnection, job: Job) -> None:
        parent = (await conn.execute(q.job_images(job.parent_job_id or 0, job.image_index))).one_or_none()
        if parent is None:
            raise errors.BadParent(f"job {job.parent_job_id} has no stored image {job.image_index}")
        rows = [
            {
                "job_id": job.id,
                "index": index,
                "png": parent.png,
                "tokens": parent.tokens,
                "score": parent.score,
            }
            for index in (GRID_INDEX, 0)
        ]
        await conn.execute(q.insert_images(), rows)

    # --- position and ETA -------------------------------------------------------------------------------

    async def position(self, job_id: int, *, now: datetime | None = None) -> tuple[int, timedelta | None]:
        """(1-based place among queued jobs, estimated time until done); (0, …) once it is running/over."""
        now = _now(now)
        async with self._reading() as conn:
            return await self._position(conn, await self._get(conn, job_id), now)

    async def _position(self, conn: AsyncConnection, job: Job, now: datetime) -> tuple[int, timedelta | None]:
        """Place and ETA. The ETA divides the images still to draw before this job is done by the drawing
        rate of the generators alive now, each measured over its busy time (idle time between jobs never
        counts), so it neither grows while a job waits nor while the queue empties; None until a
        generator has drawn something."""
        if job.status not in (Status.QUEUED, Status.RUNNING):
            return 0, timedelta(0)
        count, images_ahead, running = (await conn.execute(q.queue_ahead(job.fair_tag, job.id))).one()
        seen = (await conn.execute(q.workers_seen_since(now - timedelta(seconds=SEEN_WINDOW_SECONDS)))).all()
        alive = [WorkerInfo(**row._mapping) for row in seen]
        rate = sum(w.images_per_second or 0.0 for w in alive if w.is_alive(now))  # images/s, all workers
        if job.status is Status.RUNNING:
            remaining = job.images * (1.0 - job.progress)
            return 0, timedelta(seconds=remaining / rate) if rate else None
        eta = timedelta(seconds=(images_ahead + running + job.images) / rate) if rate else None
        return count + 1, eta

    # --- the generator's side: claim, heartbeat, finish, fail, release ----------------------------------

    async def claim(
        self,
        worker_id: str,
        max_images: int,
        lease_seconds: float | None = None,
        *,
        now: datetime | None = None,
    ) -> list[Job]:
        """Lease the fairest queued jobs whose images fit in `max_images` (always at least one job if any
        is queued, even if it alone is bigger: split it). One statement; [] when the queue is empty."""
        if max_images < 1:
            raise ValueError("max_images must be at least 1")
        now = _now(now)
        lease_until = now + timedelta(seconds=lease_seconds or self.limits.lease_seconds)
        async with self._engine.begin() as conn:
            binds = {"worker_id": worker_id, "max_images": max_images, "now": now, "lease_until": lease_until}
            rows = (await conn.execute(q.claim(self._dialect), binds)).all()
        claimed = sorted((Job.from_row(row) for row in rows), key=lambda job: (job.fair_tag, job.id))
        for job in claimed:
            log.info("job claimed", extra={"action": "job_claimed", "job_id": job.id, "worker_id": worker_id})
        return claimed

    async def heartbeat(
        self,
        job_ids: Collection[int],
        worker_id: str,
        progress: float,
        lease_seconds: float | None = None,
        *,
        now: datetime | None = None,
    ) -> Heartbeat:
        """Extend the leases of jobs this worker renders and record progress (0..1)."""
        now = _now(now)
        ids = set(job_ids)
        if not ids:
            return Heartbeat(frozenset(), frozenset())
        lease_until = now + timedelta(seconds=lease_seconds or self.limits.lease_seconds)
        progress = min(1.0, max(0.0, progress))
        async with self._engine.begin() as conn:
            rows = (await conn.execute(q.extend_leases(ids, worker_id, lease_until, progress))).all()
        held = {row.id for row in rows}
        return Heartbeat(
            cancel_requested=frozenset(row.id for row in rows if row.cancel_requested),
            lost=frozenset(ids - held),
        )

    async def finish(
        self,
        job_id: int,
        worker_id: str,
        *,
        grid_png: bytes,
        images: Sequence[RenderedImage | tuple[bytes, bytes]],
        gpu_seconds: float,
        candidates: int | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Store the grid and images and mark the job done, in one transaction.

        Raises `LeaseLost` (storing nothing) if the worker no longer holds the job. If a cancel was
        requested meanwhile the job ends cancelled and its images are not stored.
        """
        result = Rendered(job_id, grid_png, images, gpu_seconds, candidates)
        done = await self.finish_many(worker_id, [result], now=now)
        if not done:
            raise errors.LeaseLost(job_id, worker_id)
        return done[0]

    async def finish_many(
        self, worker_id: str, results: Sequence[Rendered], *, now: datetime | None = None
    ) -> list[Job]:
        """`finish` for a whole batch in one transaction (what a generator rendering a batch calls).

        Returns the jobs finished; a job whose lease this worker lost is left out and stores nothing.
        """
        now = _now(now)
        by_id = {result.job_id: result for result in results}
        if not by_id:
            return []
        async with self._engine.begin() as conn:
            gpu = {job_id: float(result.gpu_seconds) for job_id, result in by_id.items()}
            if len(gpu) == 1:
                [(job_id, seconds)] = gpu.items()
                binds = {"job_id": job_id, "worker_id": worker_id, "now": now, "b_gpu_seconds": seconds}
                rows = (await conn.execute(q.mark_one_done(), binds)).all()
            else:
                rows = (await conn.execute(q.mark_done(gpu, worker_id, now))).all()
            done = sorted((Job.from_row(row) for row in rows), key=lambda job: job.id)
            values: list[dict[str, Any]] = []
            for job in done:
                result = by_id[job.id]
                if len(result.images) != job.images:
                    raise ValueError(f"job {job.id} asked for {job.images} images, got {len(result.images)}")
                if job.status is not Status.DONE:
                    continue  # cancelled meanwhile: nothing to keep
                values.append(
                    {
                        "job_id": job.id,
                        "index": GRID_INDEX,
                        "png": result.grid_png,
                        "tokens": None,
                        "score": None,
                    }
                )
                for index, image in enumerate(result.images):
                    if not isinstance(image, RenderedImage):
                        image = RenderedImage(*image)
                    values.append(
                        {
                            "job_id": job.id,
                            "index": index,
                            "png": image.png,
                            "tokens": image.tokens,
                            "score": image.score,
                        }
                    )
            drawn = {r.job_id: r.candidates for r in by_id.values() if r.candidates is not None}
            for job in [job for job in done if job.id in drawn]:
                row = (await conn.execute(q.set_drawn(job.id, drawn[job.id], job.images))).one()
                done[done.index(job)] = Job.from_row(row)
            if values:
                await conn.execute(q.insert_images(), values)
            if done:
                images_done = sum(job.images for job in done)
                binds = {
                    "b_worker_id": worker_id,
                    "b_jobs_done": len(done),
                    "b_images_done": images_done,
                    "b_now": now,
                }
                await conn.execute(q.count_worker_output(), binds)
        for job in done:
            log.info(
                "job finished",
                extra={"action": f"job_{job.status}", "job_id": job.id, "worker_id": worker_id},
            )
        return done

    async def fail(
        self,
        job_id: int,
        worker_id: str,
        *,
        reason: str,
        detail: str | None = None,
        retryable: bool = True,
        gpu_seconds: float = 0.0,
        now: datetime | None = None,
    ) -> Job:
        """Report a failed render. Retryable failures go back to the queue after a backoff (10 s, 20 s,
        … up to 10 min) until `max_attempts`; then, or when not retryable, the job fails with `reason`
        (user-facing; `detail` is kept for admins). Raises `LeaseLost` if the worker no longer holds it."""
        now = _now(now)
        async with self._engine.begin() as conn:
            row = (await conn.execute(q.held_job(job_id, worker_id))).one_or_none()
            if row is None:
                raise errors.LeaseLost(job_id, worker_id)
            job = Job.from_row(row)
            gpu = (job.gpu_seconds or 0.0) + gpu_seconds
            if job.cancel_requested:  # nobody wants a retry of a cancelled job
                values: dict[str, Any] = {
                    "status": Status.CANCELLED.value,
                    "finished_at": now,
                    "delivery": Delivery.PENDING.value,
                    "delivery_next_try_at": now,
                }
                action = "job_cancelled"
            elif retryable and job.attempts < self.limits.max_attempts:
                backoff = min(
                    RETRY_BACKOFF_MAX_SECONDS, self.limits.retry_backoff_seconds * 2 ** (job.attempts - 1)
                )
                values = {
                    "status": Status.QUEUED.value,
                    "run_after": now + timedelta(seconds=backoff),
                    "progress": 0.0,
                }
                action = "job_error_retry"
            else:
                values = {
                    "status": Status.FAILED.value,
                    "finished_at": now,
                    "delivery": Delivery.PENDING.value,
                    "delivery_next_try_at": now,
                }
                action = "job_error"
            values.update(error=reason, error_detail=detail, gpu_seconds=gpu)
            updated = (
                await conn.execute(q.end_attempt(job_id, worker_id, job.attempts, values))
            ).one_or_none()
            if updated is None:
                raise errors.LeaseLost(job_id, worker_id)
        log.warning(
            "job failed: %s", reason, extra={"action": action, "job_id": job_id, "worker_id": worker_id}
        )
        return Job.from_row(updated)

    async def cancelled(self, job_id: int, worker_id: str, *, now: datetime | None = None) -> Job:
        """The worker dropped a job whose cancel was requested (see `Heartbeat.cancel_requested`)."""
        now = _now(now)
        async with self._engine.begin() as conn:
            row = (await conn.execute(q.held_job(job_id, worker_id))).one_or_none()
            if row is None:
                raise errors.LeaseLost(job_id, worker_id)
            values = {
                "status": Status.CANCELLED.value,
                "finished_at": now,
                "delivery": Delivery.PENDING.value,
                "delivery_next_try_at": now,
            }
            updated = (
                await conn.execute(q.end_attempt(job_id, worker_id, row.attempts, values))
            ).one_or_none()
            if updated is None:
                raise errors.LeaseLost(job_id, worker_id)
        return Job.from_row(updated)

    async def release(self, job_ids: Collection[int], worker_id: str) -> list[int]:
        """Graceful shutdown: put held jobs back in the queue without counting the attempt."""
        if not job_ids:
            return []
        async with self._engine.begin() as conn:
            rows = (await conn.execute(q.release(set(job_ids), worker_id))).all()
        return sorted(row.id for row in rows)

    async def reap(self, *, now: datetime | None = None) -> list[Job]:
        """Deal with jobs whose worker stopped heartbeating: re-queue them (the attempt counted), fail
        those that used every attempt, and cancel those whose cancel was requested. Any process may
        call it periodically; it is idempotent."""
        now = _now(now)
        async with self._engine.begin() as conn:
            rows = [
                *(await conn.execute(q.reap_cancelled(now))).all(),
                *(await conn.execute(q.reap_exhausted(now, self.limits.max_attempts))).all(),
                *(await conn.execute(q.reap_requeue(now, self.limits.max_attempts))).all(),
            ]
        reaped = [Job.from_row(row) for row in rows]
        for job in reaped:
            log.warning("lease expired", extra={"action": f"job_reaped_{job.status}", "job_id": job.id})
        return reaped

    # --- the requester's side: cancel, status ------------------------------------------------------------

    async def cancel(
        self, job_id: int, user_id: str, *, is_admin: bool = False, now: datetime | None = None
    ) -> Job:
        """Cancel a job: a queued one at once; a running one is flagged and its worker drops it at the
        next heartbeat. Only the requester or an admin may; a finished job is returned unchanged."""
        now = _now(now)
        async with self._engine.begin() as conn:
            job = await self._get(conn, job_id, lock=True)
            if not is_admin and job.user_id != user_id:
                raise errors.NotAllowed(
                    f"only the person who asked for job {job_id}, or an admin, may cancel it"
                )
            statement = {
                Status.QUEUED: q.cancel_queued(job_id, now),
                Status.RUNNING: q.request_cancel(job_id),
            }
            if job.status in statement:
                row = (await conn.execute(statement[job.status])).one_or_none()
                if row is not None:
                    job = Job.from_row(row)
        log.info("job cancel", extra={"action": "job_cancel", "job_id": job_id, "status": job.status.value})
        return job

    async def get_job(self, job_id: int) -> Job:
        async with self._reading() as conn:
            return await self._get(conn, job_id)

    async def jobs_for_user(
        self,
        platform: str,
        user_id: str,
        *,
        limit: int = 20,
        statuses: Collection[Status] | None = None,
        with_pictures: bool = False,
    ) -> list[Job]:
        async with self._reading() as conn:
            rows = await conn.execute(
                q.jobs_for_user(
                    platform, user_id, limit, [s.value for s in statuses or ()], with_pictures=with_pictures
                )
            )
            return [Job.from_row(row) for row in rows]

    async def images(self, job_id: int) -> list[StoredImage]:
        """The job's grid (index -1) and images (0..n-1) with their VQGAN tokens."""
        async with self._reading() as conn:
            rows = (await conn.execute(q.job_images(job_id))).all()
        return [_stored_image(row) for row in rows]

    async def image(self, job_id: int, index: int) -> StoredImage:
        async with self._reading() as conn:
            row = (await conn.execute(q.job_images(job_id, index))).one_or_none()
        if row is None:
            raise errors.JobNotFound(job_id)
        return _stored_image(row)
