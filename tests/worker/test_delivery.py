"""The delivery loop against a real HTTP endpoint on 127.0.0.1 (429/5xx with Retry-After, then success or
give-up) and the idempotency of posting when a response is lost."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from bot.posters import PosterError, RecordRefs
from bot.posters.local import LocalPoster
from bot.posters.webhook import WebhookPoster
from generator.delivery import Deliverer
from jobs.models import EnqueueRequest, Job
from jobs.queue import Queue
from tests.worker.conftest import wait_until

pytestmark = pytest.mark.timeout(60)


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def finished_job(queue: Queue) -> Job:
    """A job rendered and stored through the queue (no model needed to test delivery)."""
    await queue.enqueue(EnqueueRequest(platform="cli", user_id="u1", prompt="a cat", options={"images": 1}))
    [claimed] = await queue.claim("w-render", 8)
    return await queue.finish(
        claimed.id, "w-render", grid_png=png("red"), images=[(png("blue"), bytes(512))], gpu_seconds=0.5
    )


@dataclass
class Target:
    """A webhook endpoint answering from a script of (status, Retry-After) pairs, then 200."""

    script: list[tuple[int, str | None]]
    repeat_last: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(
            {
                "at": time.monotonic(),
                "key": request.headers.get("Idempotency-Key"),
                "job": json.loads(str(form["job"])),
                "files": sorted(k for k in form if k != "job"),
            }
        )
        if self.script:
            status, retry_after = (
                self.script[0] if self.repeat_last and len(self.script) == 1 else self.script.pop(0)
            )
            if status >= 400:
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                return web.Response(status=status, headers=headers, text="nope")
        return web.json_response({"id": f"m-{len(self.requests)}"})


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    endpoint = Target(script=[])
    app = web.Application()
    app.router.add_post("/hook", endpoint.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    endpoint.url = f"http://{host}:{port}/hook"
    yield endpoint
    await runner.cleanup()


@pytest.fixture
async def deliver_in_background() -> AsyncIterator[Any]:
    tasks: list[tuple[asyncio.Event, asyncio.Task[None], Deliverer]] = []

    def start(deliverer: Deliverer) -> None:
        stop = asyncio.Event()
        tasks.append((stop, asyncio.create_task(deliverer.run(stop)), deliverer))

    yield start
    for stop, task, deliverer in tasks:
        stop.set()
        await asyncio.wait_for(task, 10)
        for poster in deliverer.posters.values():
            await poster.aclose()


async def test_retries_honour_retry_after_then_deliver(
    queue: Queue, target: Target, deliver_in_background
) -> None:
    target.script = [(429, "1"), (503, "0")]
    job = await finished_job(queue)
    deliver_in_background(
        Deliverer(queue=queue, posters={"cli": WebhookPoster(url=target.url)}, poll_seconds=0.05)
    )

    async def is_delivered() -> Job | None:
        current = await queue.get_job(job.id)
        return current if current.delivery.value == "delivered" else None

    delivered = await wait_until(is_delivered, timeout=15, what="delivery after two refusals")
    assert len(target.requests) == 3
    assert target.requests[1]["at"] - target.requests[0]["at"] >= 0.9  # waited for Retry-After: 1
    assert {r["key"] for r in target.requests} == {f"imagine-job-{job.id}"}  # the receiver can deduplicate
    assert target.requests[-1]["files"] == ["grid", "image-0"]
    assert delivered.refs.final_message_id == "m-3"
    assert delivered.delivery_attempts == 3 and delivered.delivery_error is None


async def test_gives_up_as_undeliverable_with_the_reason(
    make_queue: Any, target: Target, deliver_in_background
) -> None:
    queue = make_queue(delivery_timeout_seconds=1.0)
    target.script, target.repeat_last = [(500, "0.2")], True
    job = await finished_job(queue)
    deliver_in_background(
        Deliverer(queue=queue, posters={"cli": WebhookPoster(url=target.url)}, poll_seconds=0.05)
    )

    async def gave_up() -> Job | None:
        current = await queue.get_job(job.id)
        return current if current.delivery.value == "undeliverable" else None

    undeliverable = await wait_until(gave_up, timeout=15, what="the delivery to be given up")
    assert undeliverable.delivery_error == "webhook answered HTTP 500"
    tries = len(target.requests)
    assert tries >= 3  # retried every ~0.2 s for about a second
    await asyncio.sleep(0.5)
    assert len(target.requests) == tries  # and then left alone


class LostResponsePoster(LocalPoster):
    """Posts, then loses the answer once (as a timeout after the platform accepted the message)."""

    lost = 0

    async def post_result(self, job: Job, *, grid_png: bytes, images: Any, record_refs: RecordRefs) -> Any:
        refs = await super().post_result(job, grid_png=grid_png, images=images, record_refs=record_refs)
        if not self.lost:
            self.lost += 1
            raise PosterError("read timeout after posting", retry_after=0)
        return refs


async def test_a_lost_response_edits_instead_of_posting_twice(
    queue: Queue, tmp_outbox: Path, deliver_in_background
) -> None:
    job = await finished_job(queue)
    deliver_in_background(
        Deliverer(queue=queue, posters={"cli": LostResponsePoster(outbox=tmp_outbox)}, poll_seconds=0.05)
    )

    async def is_delivered() -> Job | None:
        current = await queue.get_job(job.id)
        return current if current.delivery.value == "delivered" else None

    delivered = await wait_until(is_delivered, timeout=15, what="delivery after a lost response")
    posts = [json.loads(line) for line in (tmp_outbox / "posts.jsonl").read_text().splitlines()]
    assert [post["how"] for post in posts] == ["new", "edit"]  # one message for the user
    assert [p.name for p in tmp_outbox.iterdir() if p.is_dir()] == [f"job-{job.id}"]
    assert delivered.refs.final_message_id == f"local:job-{job.id}"
