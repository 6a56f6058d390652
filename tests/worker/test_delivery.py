"""The delivery loop against the fake Slack on 127.0.0.1 (429/5xx with Retry-After, then success or
give-up) and the idempotency of posting when a response is lost."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.posters import PosterError, RecordRefs, make_posters
from bot.slack.poster import SlackPoster
from generator.delivery import Deliverer
from jobs.models import EnqueueRequest, Job
from jobs.queue import Queue
from jobs.retention import Retention
from jobs.settings import load_settings
from tests.fakes.poster import RecordingPoster
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import web_client_for
from tests.worker.harness import wait_until

pytestmark = pytest.mark.timeout(60)


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def finished_job(queue: Queue, *, platform: str = "cli") -> Job:
    """A job rendered and stored through the queue (no model needed to test delivery)."""
    await queue.enqueue(
        EnqueueRequest(
            platform=platform,
            user_id="U1",
            prompt="a cat",
            guild_id="T0TEAM",
            channel_id=CHANNEL,
            options={"images": 1},
        )
    )
    [claimed] = await queue.claim("w-render", 8)
    return await queue.finish(
        claimed.id, "w-render", grid_png=png("red"), images=[(png("blue"), bytes(512))], gpu_seconds=0.5
    )


CHANNEL = "C0ART"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_channel(CHANNEL)
        yield fake


def slack_poster(fake: FakeSlack) -> SlackPoster:
    """The production poster, its client pointed at the fake, retrying nothing itself: every 429 and 5xx
    goes back to the delivery loop, whose retries these tests watch."""
    return SlackPoster(client=web_client_for(fake, retry_handlers=[]))


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
    queue: Queue, fake_slack: FakeSlack, deliver_in_background: Any
) -> None:
    fake_slack.rate_limit("files.getUploadURLExternal", retry_after=1)
    fake_slack.fail("files.getUploadURLExternal", status=503, error="service_unavailable", retry_after=0)
    job = await finished_job(queue, platform="slack")
    deliver_in_background(
        Deliverer(queue=queue, posters={"slack": slack_poster(fake_slack)}, poll_seconds=0.05)
    )

    async def is_delivered() -> Job | None:
        current = await queue.get_job(job.id)
        return current if current.delivery.value == "delivered" else None

    delivered = await wait_until(is_delivered, timeout=15, what="delivery after two refusals")
    reserve = fake_slack.calls_to("files.getUploadURLExternal")
    assert [call.status for call in reserve] == [429, 503, 200]
    assert reserve[1].at - reserve[0].at >= 0.9  # waited for Retry-After: 1
    assert len(fake_slack.completed_uploads(CHANNEL)) == 1  # the grid was shared once
    assert delivered.delivery_attempts == 3 and delivered.delivery_error is None


async def test_gives_up_as_undeliverable_with_the_reason(
    make_queue: Any, fake_slack: FakeSlack, deliver_in_background: Any
) -> None:
    queue = make_queue(delivery_timeout_seconds=1.0)
    fake_slack.fail("files.getUploadURLExternal", times=None, status=500, error="fatal_error", retry_after=0)
    job = await finished_job(queue, platform="slack")
    deliver_in_background(
        Deliverer(queue=queue, posters={"slack": slack_poster(fake_slack)}, poll_seconds=0.05)
    )

    async def gave_up() -> Job | None:
        current = await queue.get_job(job.id)
        return current if current.delivery.value == "undeliverable" else None

    undeliverable = await wait_until(gave_up, timeout=15, what="the delivery to be given up")
    assert undeliverable.delivery_error == "Slack refused (500): fatal_error"
    tries = len(fake_slack.calls_to("files.getUploadURLExternal"))
    assert tries >= 3  # retried for about a second
    await asyncio.sleep(0.5)
    assert len(fake_slack.calls_to("files.getUploadURLExternal")) == tries  # and then left alone


@pytest.mark.parametrize("platform", ["cli", "web"])
async def test_terminal_and_dashboard_results_live_only_in_the_queue_so_retention_removes_them(
    queue: Queue, tmp_path: Path, deliver_in_background, platform: str
) -> None:
    """No copy of the pictures is written anywhere retention does not reach (the data directory holds
    only what the operator put there)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    posters = make_posters(load_settings(None, data_dir=data_dir))
    job = await finished_job(queue, platform=platform)
    deliver_in_background(Deliverer(queue=queue, posters=posters, poll_seconds=0.05))

    async def is_delivered() -> bool:
        return (await queue.get_job(job.id)).delivery.value == "delivered"

    await wait_until(is_delivered, timeout=15, what="the job delivered")
    assert list(data_dir.iterdir()) == []
    assert [image.index for image in await queue.images(job.id)] == [-1, 0]
    two_days_on = datetime.now(UTC) + timedelta(days=2)
    gone = await queue.apply_retention(Retention.from_days(1, 0), now=two_days_on)
    assert gone.images_deleted == 2 and await queue.images(job.id) == []


class LostResponsePoster(RecordingPoster):
    """Posts, then loses the answer once (as a timeout after the platform accepted the message)."""

    lost = 0

    async def post_result(self, job: Job, *, grid_png: bytes, images: Any, record_refs: RecordRefs) -> Any:
        refs = await super().post_result(job, grid_png=grid_png, images=images, record_refs=record_refs)
        if not self.lost:
            self.lost += 1
            raise PosterError("read timeout after posting", retry_after=0)
        return refs


async def test_a_lost_response_edits_instead_of_posting_twice(queue: Queue, deliver_in_background) -> None:
    job = await finished_job(queue)
    chat = LostResponsePoster()
    deliver_in_background(Deliverer(queue=queue, posters={"cli": chat}, poll_seconds=0.05))

    async def is_delivered() -> Job | None:
        current = await queue.get_job(job.id)
        return current if current.delivery.value == "delivered" else None

    delivered = await wait_until(is_delivered, timeout=15, what="delivery after a lost response")
    assert [post.how for post in chat.posts] == ["new", "edit"]  # one message for the user
    assert list(chat.messages) == [job.id]
    assert delivered.refs.final_message_id == f"chat:job-{job.id}"
