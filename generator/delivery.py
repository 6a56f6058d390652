"""The delivery loop: post what is finished and not yet delivered (and the progress of running jobs)
through the poster of each job's platform (`bot.posters`).

At-least-once with idempotency (docs/design.md, "A job's life"): `Queue.due_deliveries` holds a job for
`hold_seconds` so only one deliverer posts it; the poster records its message refs before posting, so a
crash between posting and `mark_delivered` leads to an edit of the same message, never a second one and
never a re-render (the images are read back from the database). A `PosterError` (429/5xx) is retried after
its Retry-After or a doubling backoff; `Queue.delivery_failed` turns it into "undeliverable", the reason
kept, once `delivery_timeout_seconds` have passed since the job finished.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.posters import Poster, PosterError
from generator.dbretry import DB_DEADLINE_SECONDS, Outages, retrying
from jobs.errors import one_line
from jobs.faults import is_transient
from jobs.models import GRID_INDEX, Job, Status
from jobs.queue import DELIVERY_HOLD_SECONDS, Queue

log = logging.getLogger(__name__)

DELIVERY_POLL_SECONDS = 1.0  # look for due deliveries this often (a finished render wakes it sooner)
DELIVERY_BATCH_COUNT = 20  # jobs taken, and posted concurrently, per pass
POSTER_TIMEOUT_SECONDS = 30.0  # one post may take this long before it counts as a transient failure
PROGRESS_POST_SECONDS = 5.0  # at most one progress post per job per this many seconds
DRAIN_SECONDS = 3.0  # on stop, post what finished for at most this long
NO_POSTER_RETRY_SECONDS = 60.0  # a platform this process has no poster for: look again this much later


@dataclass
class _Progress:
    job: Job
    progress: float
    posted_at: float = 0.0
    posted_progress: float = -1.0
    preview: bytes | None = None  # the latest preview PNG of the grid being drawn


class Deliverer:
    """Posts finished jobs and progress; run `run(stop)` as a task. Knobs are keyword arguments."""

    def __init__(
        self,
        *,
        queue: Queue,
        posters: Mapping[str, Poster],
        poll_seconds: float = DELIVERY_POLL_SECONDS,
        hold_seconds: float = DELIVERY_HOLD_SECONDS,
        batch_count: int = DELIVERY_BATCH_COUNT,
        poster_timeout_seconds: float = POSTER_TIMEOUT_SECONDS,
        progress_seconds: float = PROGRESS_POST_SECONDS,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.queue = queue
        self.posters = dict(posters)
        self.poll_seconds = poll_seconds
        self.hold_seconds = hold_seconds
        self.batch_count = batch_count
        # a post must end well within the hold, or another deliverer could start the same one
        self.poster_timeout_seconds = min(poster_timeout_seconds, hold_seconds / 2)
        self.progress_seconds = progress_seconds
        self.drain_seconds = drain_seconds
        self.outages = Outages(describe=queue.fault)
        self.wake = asyncio.Event()  # set by the render loop when a job finishes
        self._progress: dict[int, _Progress] = {}

    # --- called by the render loop ------------------------------------------------------------------

    def note_progress(self, job: Job, progress: float) -> None:
        entry = self._progress.get(job.id)
        if entry is None:
            self._progress[job.id] = _Progress(job, progress)
        else:
            entry.progress = progress

    def note_preview(self, job: Job, png: bytes) -> None:
        """The render loop drew a preview: the next progress edit carries it."""
        entry = self._progress.setdefault(job.id, _Progress(job, job.progress))
        entry.preview = png

    def note_finished(self, job_id: int) -> None:
        self._progress.pop(job_id, None)
        self.wake.set()

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Post until `stop`; then drain: post what is due (what finished just before the stop) for up to
        `drain_seconds`, so a clean stop leaves nothing undelivered that could be posted."""
        log.info("delivery loop started", extra={"action": "delivery_started"})
        while not stop.is_set():
            try:
                taken = await self.deliver_due()
                await self.post_progress_due()
            except Exception as exc:
                self.outages.ride_out(exc, "delivery")
                taken = 0
            if taken >= self.batch_count:
                continue  # more may be waiting
            await wait_any(self.wake, stop, timeout=self.poll_seconds)
            self.wake.clear()
        await self._drain()
        log.info("delivery loop stopped", extra={"action": "delivery_stopped"})

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self.drain_seconds):
                while await self.deliver_due():
                    pass
        except TimeoutError:
            log.warning(
                "stopped with deliveries still due: another generator will post them",
                extra={"action": "delivery_drain_timeout"},
            )
        except Exception as exc:
            log.warning(
                "could not drain deliveries: %s",
                one_line(exc, 200),
                extra={"action": "delivery_drain_failed"},
            )

    async def deliver_due(self) -> int:
        """One pass: take due jobs and post them concurrently; returns how many were taken."""
        jobs = await retrying(
            lambda: self.queue.due_deliveries(self.batch_count, hold_seconds=self.hold_seconds),
            what="due_deliveries",
            deadline_seconds=DB_DEADLINE_SECONDS,
        )
        if jobs:
            await asyncio.gather(*(self.deliver(job) for job in jobs))
        return len(jobs)

    async def deliver(self, job: Job) -> None:
        """Post one finished job and record the outcome; never raises for a poster's failure."""
        extra = {"job_id": job.id, "platform": job.platform, "attempt": job.delivery_attempts}
        poster = self.posters.get(job.platform)
        if poster is None:
            await self._failed(
                job,
                f"no poster for platform {job.platform!r} in this generator",
                NO_POSTER_RETRY_SECONDS,
                extra,
            )
            return

        async def record_refs(**refs: Any) -> None:
            await retrying(
                lambda: self.queue.record_message_refs(job.id, **refs),
                what="record_message_refs",
                deadline_seconds=DB_DEADLINE_SECONDS,
                **extra,
            )

        try:
            refs = await asyncio.wait_for(self._post(poster, job, record_refs), self.poster_timeout_seconds)
        except PosterError as exc:
            extra = {**extra, "status": exc.status, "permanent": exc.is_permanent}
            await self._failed(job, exc.reason, exc.retry_after, extra, is_permanent=exc.is_permanent)
            return
        except TimeoutError:
            await self._failed(job, f"posting timed out after {self.poster_timeout_seconds:g} s", None, extra)
            return
        except Exception as exc:
            if is_transient(exc):  # the database went away mid-post (reading images, recording refs)
                log.warning("delivery interrupted: %s", exc, extra={"action": "delivery_db_retry", **extra})
                return  # the hold expires and it is taken again; refs make the retry an edit
            log.exception("poster failed", extra={"action": "delivery_error", **extra})
            await self._failed(job, f"poster error: {type(exc).__name__}: {exc}"[:500], None, extra)
            return
        await retrying(
            lambda: self.queue.mark_delivered(job.id, **refs),
            what="mark_delivered",
            deadline_seconds=DB_DEADLINE_SECONDS,
            **extra,
        )
        log.info("delivered", extra={"action": "job_delivered", **extra, "status": job.status.value})

    async def _post(self, poster: Poster, job: Job, record_refs: Any) -> Mapping[str, Any]:
        if job.status is Status.DONE:
            stored = await self.queue.images(job.id)
            grid = next(image.png for image in stored if image.index == GRID_INDEX)
            images = [
                image.png for image in sorted(stored, key=lambda i: i.index) if image.index != GRID_INDEX
            ]
            return await poster.post_result(job, grid_png=grid, images=images, record_refs=record_refs)
        reason = job.error or ("cancelled" if job.status is Status.CANCELLED else "failed")
        return await poster.post_failure(job, reason=reason, record_refs=record_refs)

    async def _failed(
        self,
        job: Job,
        reason: str,
        retry_after: float | None,
        extra: dict[str, Any],
        *,
        is_permanent: bool = False,
    ) -> None:
        updated = await retrying(
            lambda: self.queue.delivery_failed(
                job.id, reason, retry_after=retry_after, is_permanent=is_permanent
            ),
            what="delivery_failed",
            deadline_seconds=DB_DEADLINE_SECONDS,
            **extra,
        )
        action = "job_undeliverable" if updated.delivery.value == "undeliverable" else "delivery_retry"
        log.warning(
            "delivery failed: %s", reason, extra={"action": action, **extra, "retry_after": retry_after}
        )

    async def post_progress_due(self) -> None:
        """Post progress of running jobs, at most every `progress_seconds` per job; best effort."""
        now = time.monotonic()
        for entry in list(self._progress.values()):
            poster = self.posters.get(entry.job.platform)
            if poster is None or now - entry.posted_at < self.progress_seconds:
                continue
            if entry.progress <= entry.posted_progress:
                continue
            entry.posted_at, entry.posted_progress = now, entry.progress

            async def record_refs(_job_id: int = entry.job.id, **refs: Any) -> None:
                await self.queue.record_message_refs(_job_id, **refs)

            try:
                # The job as it is now, not as claimed: a frontend may record its message (Slack's
                # placeholder) after the claim, and a job that ended meanwhile gets no stale progress.
                job = await self.queue.get_job(entry.job.id)
                if job.status is not Status.RUNNING:
                    continue
                extra = {"preview": entry.preview} if entry.preview is not None else {}
                await asyncio.wait_for(
                    poster.post_progress(job, progress=entry.progress, record_refs=record_refs, **extra),
                    self.poster_timeout_seconds,
                )
            except Exception as exc:  # progress is a courtesy: never fail a job for it
                log.info(
                    "progress post failed: %s",
                    exc,
                    extra={"action": "progress_error", "job_id": entry.job.id},
                )


async def wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Return when any event is set or `timeout` seconds pass (the render loop's idle wait uses it too)."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
