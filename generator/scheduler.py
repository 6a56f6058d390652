"""The render loop: claim fairly, draw every claimed job in one shared batch, store, mark done.

    ┌─▶ claim (fair, budget = free image slots) ─▶ plan rows (variation: parent's tokens as prefix)
    │   admit rows into free slots (prompts encoded once)      ◀─ continuous batching: between any two steps
    │   step: one token for every row (in a thread: the event loop keeps delivering and heartbeating)
    │   finished rows → when a job has all its images: decode → grid → `Queue.finish` (one transaction)
    └── every `progress_seconds`: progress + lease extension; cancelled jobs leave the batch; lost ones too

Each row (one image) has its own position in the 256-token sequence, so a job claimed mid-batch starts at
the next step instead of waiting for the batch to end (`Batching.CONTINUOUS`; `BATCH` and `JOB` are the
batch-at-a-time and one-job-at-a-time baselines `bench/worker.py` compares it with). A job's GPU-seconds
are its share of each step (by rows), plus its prompt encoding and its decode.

Ranking and oversampling: a job of N images with k candidates per image draws k×N rows; when they are all
drawn, the VQGAN decodes them, CLIP scores them against the prompt as typed in one pass (`ranker`), and
the best N, best first, make the grid. Upscale jobs never enter the batch: `generator/upscaling.py` draws
each one beside it, in its own thread.

Failures: CUDA out of memory halves the capacity and restarts the batch's rows (seeds make the pictures the
same); any other error in a step fails the batch's jobs as retryable (`Queue.fail` gives up after the
attempt limit, with a short reason for the user and the traceback for admins). On stop: no more claims;
jobs that can finish within `stop_grace_seconds` are finished, the others released (attempt not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np
import torch
from PIL import Image

from generator.dbretry import DB_DEADLINE_SECONDS, Outages, retrying
from generator.delivery import wait_any
from generator.engine import Engine, RowKey, RowPlan, oom_errors
from generator.model.grid import make_grid, png_bytes
from generator.model.sampler import SamplingSettings
from generator.previews import QUARTERS, preview_png, quarter
from generator.upscaling import Upscales, Upscaling
from jobs.errors import LeaseLost
from jobs.faults import is_transient
from jobs.models import Job, Kind, RenderedImage
from jobs.queue import Queue

log = logging.getLogger(__name__)

CLAIM_INTERVAL_SECONDS = 0.25  # while drawing: claim newcomers at most this often (a NOTIFY is honoured then)
BUSY_POLL_SECONDS = 0.5  # while drawing, without a NOTIFY: look for newcomers this often
IDLE_POLL_SECONDS = 1.0  # nothing to draw: poll the queue this often (a NOTIFY wakes it sooner)
PROGRESS_SECONDS = 1.0  # write progress and extend leases at most this often (never per token)
RATE_WINDOW_SECONDS = 120.0  # the drawing rate is measured over this much recent busy time
STOP_GRACE_SECONDS = 5.0  # on stop: finish what can finish within this, release the rest
VARIATION_PREFIX_ROWS = 8  # a variation keeps the top 8 of the 16 rows of codes of the picked image
RENDER_FAILED_REASON = "the generator failed while drawing this picture"
OUT_OF_MEMORY_REASON = "the generator ran out of memory drawing this picture"
PARENT_GONE_REASON = "the picture this variation starts from is no longer stored"


class Batching(enum.StrEnum):
    CONTINUOUS = "continuous"  # rows join between steps as slots free up
    BATCH = "batch"  # claim a full batch, draw it to the end, then claim again
    JOB = "job"  # one job at a time


class Ranker(Protocol):
    """CLIP (generator/model/clip.py `ClipRanker`): one score per image, one pass for them all."""

    def scores(self, images: Sequence[Image.Image], prompt: str) -> list[float]: ...


@dataclass
class ActiveJob:
    job: Job
    plans: list[RowPlan]  # every row of the job: its images × candidates
    pending: list[RowPlan]  # not yet in the engine
    tokens: dict[int, torch.Tensor] = field(default_factory=dict)  # finished images
    in_engine: set[int] = field(default_factory=set)  # image indices being drawn
    busy_seconds: float = 0.0
    has_first_token: bool = False
    candidates: int = 1  # rows drawn per image shown
    previewed: int = 0  # quarters of the codes already shown as a preview

    @property
    def rows(self) -> int:
        return len(self.plans)


class RenderLoop:
    """Run `run(stop)` as a task. Knobs are keyword arguments with the module constants as defaults."""

    def __init__(
        self,
        *,
        queue: Queue,
        engine: Engine,
        worker_id: str,
        lease_seconds: float | None = None,
        batching: Batching = Batching.CONTINUOUS,
        claim_interval_seconds: float = CLAIM_INTERVAL_SECONDS,
        busy_poll_seconds: float = BUSY_POLL_SECONDS,
        idle_poll_seconds: float = IDLE_POLL_SECONDS,
        progress_seconds: float = PROGRESS_SECONDS,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        on_progress: Callable[[Job, float], None] | None = None,
        on_finished: Callable[[int], None] | None = None,
        on_first_token: Callable[[int], None] | None = None,
        out_of_memory_errors: tuple[type[BaseException], ...] | None = None,
        ranker: Ranker | None = None,
        upscaler: Upscaling | None = None,
        default_candidates: int = 1,
        previews: bool = False,
        on_preview: Callable[[Job, bytes], None] | None = None,
    ) -> None:
        self.queue = queue
        self.engine = engine
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds or queue.limits.lease_seconds
        self.batching = Batching(batching)
        self.claim_interval_seconds = claim_interval_seconds
        self.busy_poll_seconds = busy_poll_seconds
        self.idle_poll_seconds = idle_poll_seconds
        self.progress_seconds = progress_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.on_progress = on_progress
        self.on_finished = on_finished
        self.on_first_token = on_first_token
        # what "the batch does not fit" looks like (torch.cuda.OutOfMemoryError; tests inject their own)
        self.out_of_memory_errors = out_of_memory_errors or oom_errors()
        self.ranker = ranker
        self.previews = previews  # decode the rows drawn so far at every quarter (generator/previews.py)
        self.on_preview = on_preview
        self._previewing: set[asyncio.Task[None]] = set()
        self.default_candidates = default_candidates  # jobs that leave it to the device (1 CPU, 2 GPU)
        self.upscales = Upscales(
            queue=queue,
            upscaler=upscaler,
            worker_id=worker_id,
            lease_seconds=self.lease_seconds,
            progress_seconds=progress_seconds,
            on_finished=lambda job_id: self.on_finished(job_id) if self.on_finished else None,
            on_progress=lambda job, progress: self.on_progress(job, progress) if self.on_progress else None,
        )
        self.outages = Outages(describe=queue.fault)
        self.wake = asyncio.Event()  # a NOTIFY (new job) or a test pokes it
        self.active: dict[int, ActiveJob] = {}  # claim order = fair order
        self.jobs_done = 0
        self.images_done = 0
        self.steps_done = 0  # sampling steps run (one token for every row in the batch)
        self._last_claim = 0.0
        self._last_progress = time.monotonic()
        self._step_seconds = 0.0  # moving average, to judge what can finish within the stop grace
        self._finishing: set[asyncio.Task[None]] = set()  # jobs being decoded and stored
        # drawing rate over busy time: wall time while any job is held, never the idle time between jobs
        self._busy_seconds = 0.0
        self._busy_clock: float | None = None  # when the current busy spell's last tick was taken
        self._rate_samples: deque[tuple[float, int]] = deque([(0.0, 0)])  # (busy seconds, images done)

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "render loop started",
            extra={
                "action": "render_started",
                "capacity": self.engine.capacity,
                "batching": self.batching.value,
            },
        )
        try:
            while not stop.is_set():
                self._clock_busy_time()
                if self._should_claim():
                    await self._claim()
                await self._admit()
                if self.engine.active_count == 0:
                    if not self.active:  # upscales draw in their own threads: wait, never spin
                        await wait_any(self.wake, stop, timeout=self.idle_poll_seconds)
                    await asyncio.sleep(0)  # never spin without yielding
                    continue
                await self._step()
                if self.previews:
                    self._previews_due()
                await self._progress_if_due()
        except asyncio.CancelledError:
            self.upscales.abandon()  # the loop's own tasks end with it; their leases expire
            raise
        await self._drain()
        log.info("render loop stopped", extra={"action": "render_stopped", "jobs_done": self.jobs_done})

    @property
    def images_per_second(self) -> float | None:
        """Images finished per second of busy time, over the last `RATE_WINDOW_SECONDS` of it (None
        before the first job is done): what the queue's ETAs divide by."""
        (busy_then, images_then), (busy_now, images_now) = self._rate_samples[0], self._rate_samples[-1]
        if images_now == images_then or busy_now <= busy_then:
            return None
        return (images_now - images_then) / (busy_now - busy_then)

    def _sample_rate(self) -> None:
        self._clock_busy_time()
        self._rate_samples.append((self._busy_seconds, self.images_done))
        samples = self._rate_samples
        while len(samples) > 2 and self._busy_seconds - samples[1][0] > RATE_WINDOW_SECONDS:
            samples.popleft()

    def _clock_busy_time(self) -> None:
        now = time.monotonic()
        if self._busy_clock is not None:
            self._busy_seconds += now - self._busy_clock
        self._busy_clock = now if (self.active or self._finishing or self.upscales.running) else None

    def _has_pending(self) -> bool:
        return any(active.pending for active in self.active.values())

    def _should_claim(self) -> bool:
        if self.engine.free_count == 0 or self._has_pending():
            return False
        if self.batching is not Batching.CONTINUOUS:
            return not self.active
        if not self.active:
            return True  # idle: the idle wait paces the polling
        since = time.monotonic() - self._last_claim
        if since < self.claim_interval_seconds:
            return False
        return self.wake.is_set() or since >= self.busy_poll_seconds

    async def _claim(self) -> None:
        self.wake.clear()
        self._last_claim = time.monotonic()
        budget = 1 if self.batching is Batching.JOB else self.engine.free_count
        try:
            jobs = await self.queue.claim(self.worker_id, budget, self.lease_seconds)
        except Exception as exc:
            self.outages.ride_out(exc, "claim")
            await asyncio.sleep(self.idle_poll_seconds)
            return
        for job in jobs:
            if job.kind is Kind.UPSCALE:
                self.upscales.start(job)
                continue
            candidates = job.candidates or self.default_candidates
            try:
                plans = await self._plan(job, candidates)
            except Exception as exc:
                if is_transient(exc):  # the database blinked: hand it back, the attempt not counted
                    await self._release([job.id])
                else:
                    reason = PARENT_GONE_REASON if job.kind is Kind.VARIATION else RENDER_FAILED_REASON
                    await self._fail(job, reason, exc, retryable=False)
                continue
            self.active[job.id] = ActiveJob(job=job, plans=plans, pending=list(plans), candidates=candidates)

    async def _plan(self, job: Job, candidates: int) -> list[RowPlan]:
        """One row per candidate (images × candidates, seeds seed + row); a variation starts from the top
        rows of the picked image's codes."""
        prefix = None
        if job.kind is Kind.VARIATION and job.parent_job_id is not None and job.image_index is not None:
            parent = await self.queue.image(job.parent_job_id, job.image_index)
            if parent.tokens is None:
                raise ValueError(f"job {job.parent_job_id} image {job.image_index} has no stored tokens")
            codes = torch.from_numpy(np.frombuffer(parent.tokens, dtype="<u2").astype(np.int64))
            prefix = codes[: VARIATION_PREFIX_ROWS * _grid_side(self.engine.image_length)]
        return [
            RowPlan(
                key=(job.id, index),
                prompt=job.prompt_normalized,
                settings=SamplingSettings.for_image(job.options, index),
                prefix=prefix,
            )
            for index in range(job.images * candidates)
        ]

    async def _admit(self) -> None:
        """Move pending rows into free slots, in claim (fair) order."""
        free = self.engine.free_count
        rows: list[RowPlan] = []
        for active in self.active.values():
            while active.pending and len(rows) < free:
                rows.append(active.pending.pop(0))
        if not rows:
            return
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.engine.add_rows, rows)
        except self.out_of_memory_errors as exc:
            await self._out_of_memory(exc)
            return
        except Exception as exc:
            await self._batch_failed(exc, job_ids={row.key[0] for row in rows})
            return
        self._charge(rows, time.perf_counter() - started)
        for row in rows:
            self.active[row.key[0]].in_engine.add(row.key[1])

    def _charge(self, rows: list[RowPlan], seconds: float) -> None:
        for row in rows:
            self.active[row.key[0]].busy_seconds += seconds / len(rows)

    async def _step(self) -> None:
        rows_by_job = {job_id: len(a.in_engine) for job_id, a in self.active.items() if a.in_engine}
        row_count = sum(rows_by_job.values())
        started = time.perf_counter()
        try:
            finished = await asyncio.to_thread(self.engine.step)
        except self.out_of_memory_errors as exc:
            await self._out_of_memory(exc)
            return
        except Exception as exc:
            await self._batch_failed(exc, job_ids=set(rows_by_job))
            return
        seconds = time.perf_counter() - started
        self.steps_done += 1
        self._step_seconds = seconds if not self._step_seconds else 0.9 * self._step_seconds + 0.1 * seconds
        for job_id, count in rows_by_job.items():
            active = self.active[job_id]
            active.busy_seconds += seconds * count / row_count
            if not active.has_first_token:
                active.has_first_token = True
                if self.on_first_token is not None:
                    self.on_first_token(job_id)
        completed = []
        for row in finished:
            job_id, index = cast(RowKey, row.key)
            owner = self.active.get(job_id)
            if owner is None:
                continue
            owner.tokens[index] = row.tokens
            owner.in_engine.discard(index)
            if len(owner.tokens) == owner.rows:
                completed.append(owner)
        for active in completed:
            # Decode, PNG and store off the loop's path: the next steps go on meanwhile.
            del self.active[active.job.id]
            task = asyncio.create_task(self._complete(active), name=f"finish-{active.job.id}")
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def _complete(self, active: ActiveJob) -> None:
        """Decode, compose the grid, store everything and mark the job done (one transaction)."""
        job = active.job
        extra = {"job_id": job.id, "worker_id": self.worker_id}
        started = time.perf_counter()
        try:
            tokens = torch.stack([active.tokens[i] for i in range(active.rows)])
            grid_png, rendered = await asyncio.to_thread(self._pictures, tokens, job.prompt, job.images)
        except Exception as exc:
            await self._fail(job, RENDER_FAILED_REASON, exc, retryable=True)
            return
        gpu_seconds = active.busy_seconds + time.perf_counter() - started
        try:
            await retrying(
                lambda: self.queue.finish(
                    job.id,
                    self.worker_id,
                    grid_png=grid_png,
                    images=rendered,
                    gpu_seconds=gpu_seconds,
                    candidates=active.candidates if job.candidates is None else None,
                ),
                what="finish",
                deadline_seconds=min(DB_DEADLINE_SECONDS, self.lease_seconds),
                **extra,
            )
        except LeaseLost:
            log.warning(
                "lease lost before the result was stored: dropped", extra={"action": "job_lost", **extra}
            )
            return
        except Exception as exc:
            if is_transient(exc):  # the lease will expire and the job be re-queued (attempt counted)
                log.error(
                    "could not store the result: %s", exc, extra={"action": "job_store_failed", **extra}
                )
                return
            await self._fail(job, RENDER_FAILED_REASON, exc, retryable=True)
            return
        self.jobs_done += 1
        self.images_done += active.rows
        self._clock_busy_time()
        self._rate_samples.append((self._busy_seconds, self.images_done))
        while (
            len(self._rate_samples) > 2
            and self._busy_seconds - self._rate_samples[1][0] > RATE_WINDOW_SECONDS
        ):
            self._rate_samples.popleft()
        log.info(
            "rendered in %.2f GPU-s",
            gpu_seconds,
            extra={"action": "job_rendered", **extra, "images": job.images, "gpu_seconds": gpu_seconds},
        )
        if self.on_finished is not None:
            self.on_finished(job.id)

    def _pictures(self, tokens: torch.Tensor, prompt: str, shown: int) -> tuple[bytes, list[RenderedImage]]:
        """Decode every candidate, score them all in one CLIP pass, keep the best `shown`, best first."""
        images = self.engine.decode(tokens)
        codes = tokens.to(torch.int64).numpy().astype("<u2")
        scores: list[float | None] = (
            list(self.ranker.scores(images, prompt)) if self.ranker else [None] * len(images)
        )
        order = (
            sorted(range(len(images)), key=lambda i: -(scores[i] or 0.0))
            if self.ranker
            else range(len(images))
        )
        best = list(order)[:shown]
        rendered = [
            RenderedImage(png=png_bytes(images[i]), tokens=codes[i].tobytes(), score=scores[i]) for i in best
        ]
        return png_bytes(make_grid([images[i] for i in best])), rendered

    # --- previews -----------------------------------------------------------------------------------

    def _previews_due(self) -> None:
        """Start a preview of each job whose shown rows passed another quarter of their codes."""
        if self.on_preview is None or self._previewing:
            return  # one preview decode at a time: they never queue up behind each other
        length = self.engine.image_length
        positions = self.engine.positions()
        for active in self.active.values():
            shown = [(active.job.id, index) for index in range(active.job.images)]
            if active.pending or not all(key in positions for key in shown):
                continue
            reached = quarter(min(positions[key] for key in shown), length)
            if reached <= active.previewed or reached >= QUARTERS:
                continue
            active.previewed = reached
            partial = self.engine.partial_tokens(shown)  # between steps: the sampler is idle
            rows = [partial[key] for key in shown]
            task = asyncio.create_task(self._preview(active.job, rows), name=f"preview-{active.job.id}")
            self._previewing.add(task)
            task.add_done_callback(self._previewing.discard)
            return

    async def _preview(self, job: Job, rows: list[tuple[torch.Tensor, int]]) -> None:
        try:
            png = await asyncio.to_thread(preview_png, self.engine, rows)
        except Exception as exc:  # a preview is a courtesy: the job goes on
            log.info("preview failed: %s", exc, extra={"action": "preview_error", "job_id": job.id})
            return
        if self.on_preview is not None and job.id in self.active:
            self.on_preview(job, png)

    # --- progress, cancellation, lost leases --------------------------------------------------------

    def progress(self, active: ActiveJob) -> float:
        positions = self.engine.positions()
        drawn = sum(positions.get((active.job.id, i), 0) for i in active.in_engine)
        drawn += self.engine.image_length * len(active.tokens)
        return drawn / (self.engine.image_length * active.rows)

    async def _progress_if_due(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.progress_seconds:
            return
        self._last_progress = now
        for job_id, active in list(self.active.items()):
            progress = self.progress(active)
            try:
                beat = await self.queue.heartbeat([job_id], self.worker_id, progress, self.lease_seconds)
            except Exception as exc:
                self.outages.ride_out(exc, "heartbeat", job_id=job_id)
                return  # keep drawing; try again next time
            if job_id in beat.lost:
                self._drop(job_id)
                log.warning(
                    "lease lost: dropped from the batch",
                    extra={"action": "job_lost", "job_id": job_id, "worker_id": self.worker_id},
                )
            elif job_id in beat.cancel_requested:
                self._drop(job_id)
                with contextlib.suppress(LeaseLost):
                    await self.queue.cancelled(job_id, self.worker_id)
                log.info(
                    "cancelled: dropped from the batch",
                    extra={"action": "job_cancelled", "job_id": job_id, "worker_id": self.worker_id},
                )
                if self.on_finished is not None:
                    self.on_finished(job_id)
            elif self.on_progress is not None:
                self.on_progress(active.job, progress)

    def _drop(self, job_id: int) -> ActiveJob | None:
        active = self.active.pop(job_id, None)
        if active is not None and active.in_engine:
            self.engine.drop_rows([(job_id, index) for index in active.in_engine])
        return active

    # --- failures -----------------------------------------------------------------------------------

    async def _out_of_memory(self, exc: BaseException) -> None:
        """Halve the batch and restart the rows of every active job (same seeds: same pictures)."""
        capacity = self.engine.capacity // 2
        if capacity < 1:
            await self._batch_failed(exc, job_ids=set(self.active), reason=OUT_OF_MEMORY_REASON)
            return
        log.warning(
            "out of memory with %d rows: capacity halved to %d",
            self.engine.capacity,
            capacity,
            extra={"action": "batch_oom", "worker_id": self.worker_id, "jobs": sorted(self.active)},
        )
        await asyncio.to_thread(self.engine.resize, capacity)
        self._restart_active_rows()

    async def _batch_failed(
        self, exc: BaseException, *, job_ids: set[int], reason: str = RENDER_FAILED_REASON
    ) -> None:
        """A step (or admitting rows) raised: fail those jobs as retryable and start from a clean engine."""
        log.error(
            "drawing failed: %s: %s",
            type(exc).__name__,
            exc,
            extra={"action": "batch_error", "worker_id": self.worker_id, "jobs": sorted(job_ids)},
        )
        for job_id in sorted(job_ids):
            active = self._drop(job_id)
            if active is not None:
                await self._fail(active.job, reason, exc, retryable=True)
        try:
            await asyncio.to_thread(self.engine.resize, self.engine.capacity)
        except Exception:
            log.exception("could not reset the engine", extra={"action": "engine_reset_error"})
            raise
        self._restart_active_rows()  # the others lost their rows with the reset: start them again

    def _restart_active_rows(self) -> None:
        """The engine was emptied (resized or reset): every active job draws all its images again (the
        same seeds draw the same pictures)."""
        for active in self.active.values():
            active.pending = list(active.plans)
            active.tokens.clear()
            active.in_engine.clear()

    async def _fail(self, job: Job, reason: str, exc: BaseException, *, retryable: bool) -> None:
        self.active.pop(job.id, None)
        detail = f"{self.worker_id}: " + "".join(traceback.format_exception(exc))[-4000:]
        extra = {"job_id": job.id, "worker_id": self.worker_id}
        log.warning(
            "job failed: %s: %s", type(exc).__name__, exc, extra={"action": "job_render_error", **extra}
        )
        try:
            failed = await retrying(
                lambda: self.queue.fail(
                    job.id, self.worker_id, reason=reason, detail=detail, retryable=retryable
                ),
                what="fail",
                deadline_seconds=min(DB_DEADLINE_SECONDS, self.lease_seconds),
                **extra,
            )
        except LeaseLost:
            return
        except Exception as db_exc:  # the lease expires and the reaper re-queues it
            log.error("could not record the failure: %s", db_exc, extra={"action": "job_fail_error", **extra})
            return
        if failed.status.value != "queued" and self.on_finished is not None:
            self.on_finished(job.id)

    # --- stopping -----------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Stop: finish the jobs that can finish within the grace period, release the others."""
        deadline = time.monotonic() + self.stop_grace_seconds
        while self.active:
            left = deadline - time.monotonic()
            hopeless = [
                job_id for job_id, active in self.active.items() if self._seconds_to_finish(active) > left
            ]
            if hopeless:
                await self._release(hopeless)
                continue
            if self.engine.active_count == 0:
                break
            await self._step()
            await self._progress_if_due()
        if self.active:
            await self._release(list(self.active))
        await self.upscales.stop(release=self._release)
        await self.finishing()

    async def finishing(self) -> None:
        """Wait for the jobs being decoded and stored."""
        while self._finishing:
            await asyncio.gather(*self._finishing)

    def _seconds_to_finish(self, active: ActiveJob) -> float:
        if active.pending:
            return float("inf")
        positions = self.engine.positions()
        lowest = min(
            (positions.get((active.job.id, i), 0) for i in active.in_engine), default=self.engine.image_length
        )
        return (self.engine.image_length - lowest) * (self._step_seconds or float("inf"))

    async def _release(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self._drop(job_id)
        try:
            released = await retrying(
                lambda: self.queue.release(job_ids, self.worker_id),
                what="release",
                deadline_seconds=min(5.0, self.lease_seconds),
            )
        except Exception as exc:  # the leases expire; the reaper re-queues them (attempt counted)
            log.error("could not release jobs %s: %s", job_ids, exc, extra={"action": "release_error"})
            return
        for job_id in released:
            log.info(
                "released back to the queue",
                extra={"action": "job_released", "job_id": job_id, "worker_id": self.worker_id},
            )


def _grid_side(image_length: int) -> int:
    return math.isqrt(image_length)
