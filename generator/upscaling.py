"""Upscale jobs: one picture of a finished job, 4× larger, drawn beside the sampling batch.

An upscale is claimed with the other jobs (fair order, quota counted at enqueue) but never enters the
batch: its picture is read back from the queue and `Upscaler.upscale` draws it tile by tile in a thread
while the render loop goes on stepping. Meanwhile its lease is extended every `progress_seconds`; a cancel
(or a lost lease) seen there stops it within one tile. The result is stored as the job's grid and only
image, and the delivery loop posts it like any other result. A generator killed mid-upscale loses the
lease: the reaper puts the job back and another generator draws it again (pictures are never
half-stored: `finish` is one transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from generator.dbretry import DB_DEADLINE_SECONDS, retrying
from generator.model.grid import png_bytes
from jobs.errors import LeaseLost
from jobs.models import Job, RenderedImage
from jobs.queue import Queue

log = logging.getLogger(__name__)

UPSCALE_FAILED_REASON = "the generator failed while upscaling this picture"
NO_UPSCALER_REASON = "this generator has no upscaler configured (IMAGINE_UPSCALER_NAME is empty)"


class Upscaling(Protocol):
    """generator/model/upscale.py `Upscaler` as the loop sees it."""

    def upscale(
        self,
        image: Image.Image,
        *,
        should_stop: Callable[[], bool] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> Image.Image: ...


@dataclass
class _Running:
    job: Job
    stop: threading.Event
    task: asyncio.Task[None]
    progress: float = 0.0
    settled: bool = False  # stored, failed, cancelled or lost: nothing to release


class Upscales:
    """The upscale jobs this generator holds."""

    def __init__(
        self,
        *,
        queue: Queue,
        upscaler: Upscaling | None,
        worker_id: str,
        lease_seconds: float,
        progress_seconds: float,
        on_finished: Callable[[int], None],
        on_progress: Callable[[Job, float], None] | None = None,
    ) -> None:
        self.queue = queue
        self.upscaler = upscaler
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.progress_seconds = progress_seconds
        self.on_finished = on_finished
        self.on_progress = on_progress  # the deliverer's progress edits, as for a render
        self.running: dict[int, _Running] = {}

    def start(self, job: Job) -> None:
        stop = threading.Event()
        task = asyncio.create_task(self._run(job, stop), name=f"upscale-{job.id}")
        self.running[job.id] = _Running(job, stop, task)
        task.add_done_callback(lambda _: self.running.pop(job.id, None))

    async def stop(self, *, release: Callable[[list[int]], Awaitable[None]]) -> None:
        """Stop: every upscale stops at its next tile and goes back to the queue, the attempt not counted."""
        running = list(self.running.values())
        for item in running:
            item.stop.set()
        await asyncio.gather(*(item.task for item in running), return_exceptions=True)
        unsettled = [item.job.id for item in running if not item.settled]
        if unsettled:
            await release(unsettled)

    def abandon(self) -> None:
        """The render loop was cancelled: stop every upscale where it is, storing and releasing nothing."""
        for item in self.running.values():
            item.stop.set()
            item.task.cancel()

    async def _run(self, job: Job, stop: threading.Event) -> None:
        extra = {"job_id": job.id, "worker_id": self.worker_id}
        item = self.running.get(job.id)
        started = time.perf_counter()
        try:
            if self.upscaler is None:
                raise RuntimeError(NO_UPSCALER_REASON)
            upscaler = self.upscaler
            parent = await self.queue.image(job.parent_job_id or 0, job.image_index or 0)
            with Image.open(io.BytesIO(parent.png)) as opened:
                image = opened.convert("RGB")

            def report(fraction: float) -> None:
                if item is not None:
                    item.progress = fraction

            work = asyncio.ensure_future(
                asyncio.to_thread(lambda: upscaler.upscale(image, should_stop=stop.is_set, progress=report))
            )
            # abandoned (the loop cancelled) while the thread finishes its tile: nobody awaits it then
            work.add_done_callback(lambda done: done.cancelled() or done.exception())
            while not work.done():
                await asyncio.wait({work}, timeout=self.progress_seconds)
                if not work.done() and not stop.is_set() and not await self._heartbeat(job, stop, item):
                    with contextlib.suppress(Exception):
                        await work
                    return
            if stop.is_set():  # stopping: `stop` releases it
                with contextlib.suppress(Exception):
                    await work
                return
            png = png_bytes(work.result())
        except Exception as exc:
            await self._fail(job, exc, retryable=self.upscaler is not None, item=item)
            return
        seconds = time.perf_counter() - started
        try:
            await retrying(
                lambda: self.queue.finish(
                    job.id,
                    self.worker_id,
                    grid_png=png,
                    images=[RenderedImage(png, None)],
                    gpu_seconds=seconds,
                ),
                what="finish",
                deadline_seconds=min(DB_DEADLINE_SECONDS, self.lease_seconds),
                **extra,
            )
        except LeaseLost:
            log.warning("lease lost before the upscale was stored", extra={"action": "job_lost", **extra})
        except Exception as exc:
            log.error("could not store the upscale: %s", exc, extra={"action": "job_store_failed", **extra})
            return  # the lease expires and the reaper re-queues it
        if item is not None:
            item.settled = True
        log.info(
            "upscaled in %.2f s", seconds, extra={"action": "job_upscaled", **extra, "gpu_seconds": seconds}
        )
        self.on_finished(job.id)

    async def _heartbeat(self, job: Job, stop: threading.Event, item: _Running | None) -> bool:
        """Extend the lease; False (and stop the drawing) when the job was cancelled or lost."""
        try:
            beat = await self.queue.heartbeat(
                [job.id], self.worker_id, item.progress if item else 0.0, self.lease_seconds
            )
        except Exception as exc:
            log.warning("heartbeat failed: %s", exc, extra={"action": "heartbeat_error", "job_id": job.id})
            return True  # keep drawing; the lease has time left
        if job.id in beat.lost or job.id in beat.cancel_requested:
            stop.set()
            if item is not None:
                item.settled = True
            if job.id in beat.cancel_requested:
                with contextlib.suppress(LeaseLost):
                    await self.queue.cancelled(job.id, self.worker_id)
                log.info("upscale cancelled", extra={"action": "job_cancelled", "job_id": job.id})
                self.on_finished(job.id)
            return False
        if self.on_progress is not None and item is not None:
            self.on_progress(job, item.progress)
        return True

    async def _fail(self, job: Job, exc: BaseException, *, retryable: bool, item: _Running | None) -> None:
        if item is not None:
            item.settled = True
        reason = NO_UPSCALER_REASON if self.upscaler is None else UPSCALE_FAILED_REASON
        detail = f"{self.worker_id}: " + "".join(traceback.format_exception(exc))[-4000:]
        log.warning("upscale failed: %s", exc, extra={"action": "job_render_error", "job_id": job.id})
        try:
            failed = await self.queue.fail(
                job.id, self.worker_id, reason=reason, detail=detail, retryable=retryable
            )
        except Exception as db_exc:  # the lease expires and the reaper re-queues it
            log.error(
                "could not record the failure: %s",
                db_exc,
                extra={"action": "job_fail_error", "job_id": job.id},
            )
            return
        if failed.status.value != "queued":
            self.on_finished(job.id)
