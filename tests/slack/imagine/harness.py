"""The test-side pieces of a running /imagine Slack bot: the app and its driver, the queue, the poster,
and stand-ins for the render loop (claim + finish with real PNGs) when a test needs no model."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)

from bot.slack.poster import SlackPoster
from generator.delivery import Deliverer
from generator.model.grid import make_grid, png_bytes
from jobs.models import IMAGE_TOKEN_COUNT, Job, JobSearch
from jobs.queue import Queue
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import SlackEventsDriver

CHANNEL = "C0CHAN"
USER = "U0USER"
WAIT_SECONDS = 10.0
WORKER = "test-worker"
# Tests assert what the ack says, so they give the enqueue Slack's whole window on a busy machine; the
# deferred ack (position on the response_url) has its own test.
TEST_ACK_DEADLINE_SECONDS = 2.5


async def drain_listeners(timeout: float = WAIT_SECONDS) -> None:
    """Wait for Bolt listeners that go on after their ack (Bolt runs them as bare futures)."""
    current = asyncio.current_task()
    running = [
        task
        for task in asyncio.all_tasks()
        if task is not current and "run_ack_function_asynchronously" in repr(task.get_coro())
    ]
    if running:
        await asyncio.wait(running, timeout=timeout)


def fast_retry_handlers() -> list[AsyncRetryHandler]:
    return [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=2)]


def picture(index: int, size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), ((40 * index) % 256, 100, 200))


@dataclass
class SlackBot:
    app: AsyncApp
    slack: SlackEventsDriver
    fake: FakeSlack
    queue: Queue
    poster: SlackPoster

    def deliverer(self, **knobs: Any) -> Deliverer:
        return Deliverer(queue=self.queue, posters={"slack": self.poster}, **knobs)

    async def deliver(self, **knobs: Any) -> int:
        """One pass of the generator's delivery loop; returns how many jobs it took."""
        return await self.deliverer(**knobs).deliver_due()

    async def render_next(self, *, worker_id: str = WORKER) -> Job:
        """Claim the next job and finish it with real PNGs, as the render loop would (no model), and say
        in the registry what it drew at (1 image per 0.1 s), as a generator's heartbeat does."""
        [job] = await self.queue.claim(worker_id, max_images=1)  # one job, however many images
        images = [picture(i) for i in range(job.images)]
        rendered = [(png_bytes(image), bytes(2 * IMAGE_TOKEN_COUNT)) for image in images]
        finished = await self.queue.finish(
            job.id, worker_id, grid_png=png_bytes(make_grid(images)), images=rendered, gpu_seconds=0.1
        )
        await self.queue.worker_heartbeat(
            worker_id, device="cpu", model="tiny", batch_images=8, images_per_second=10.0
        )
        return finished

    async def job_count(self) -> int:
        return (await self.queue.search_jobs(JobSearch(limit=1)))[1]

    async def wait_job(self, job_id: int, predicate: Callable[[Job], bool], what: str = "") -> Job:
        """Poll the queue (bounded) until the job satisfies `predicate`."""

        async def poll() -> Job:
            while True:
                job = await self.queue.get_job(job_id)
                if predicate(job):
                    return job
                await asyncio.sleep(0.02)

        try:
            return await asyncio.wait_for(poll(), WAIT_SECONDS)
        except TimeoutError:
            raise AssertionError(f"job {job_id}: timed out waiting for {what or predicate}") from None

    async def wait_placeholder(self, job_id: int) -> Job:
        return await self.wait_job(job_id, lambda j: bool(j.refs.placeholder_message_id), "its placeholder")


def png_size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size
