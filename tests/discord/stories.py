"""The pieces of a whole /imagine story on Discord: the real generator (render + delivery loops on a tiny
checkpoint, in this process) posting through the real DiscordPoster, the bot's movable clock, and helpers
that wait for and read what the bot answered. The fixtures that assemble them (`make_bot`, `generator`,
`queue`, `clock`) are in tests/discord/conftest.py; import the helpers by name.

Time: `clock` is the bot's and the poster's clock (aware UTC); move it with the fake's
(`advance(fake_discord, clock, seconds)`) to age interaction tokens without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from PIL import Image

from bot.discord.poster import DiscordPoster
from jobs.models import Delivery, Job, utcnow
from jobs.queue import Limits, Queue
from tests.fakes.discord import EPHEMERAL_FLAG, FakeDiscord, InteractionRecord, StoredMessage
from tests.fakes.discord_payloads import CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE

# Generous limits: each test tightens only what it is about.
STORY_LIMITS = Limits(
    max_queued_per_user=100, max_running_per_user=100, daily_quota_images=0, retry_backoff_seconds=0.0
)
WORKER_ID = "test-generator"


class Clock:
    """The bot's and the poster's `now`, movable."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def advance(fake: FakeDiscord, clock: Clock, seconds: float) -> None:
    """Age everything by `seconds`: Discord's token clock and ours."""
    fake.advance_clock(seconds)
    clock.advance(seconds)


class Generator:
    """The generator process's loops in this process: `start()` renders and delivers, `stop()` stops."""

    def __init__(
        self,
        queue: Queue,
        model: Any,
        fake: FakeDiscord,
        clock: Clock,
        *,
        ranker: Any = None,
        upscaler: Any = None,
    ) -> None:
        self.queue = queue
        self.model = model
        self.ranker = ranker  # tiny CLIP: grids come ranked
        self.upscaler = upscaler  # tiny Swin2SR: ⬆ Upscale works
        self.previews = False  # a story turns them on
        self.step_delay = 0.0  # seconds per sampling step: a slower "GPU", so edits can see the grid form
        self.poster = DiscordPoster(token=fake.token, clock=clock.now, inline_retry_seconds=0.5)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """Say a generator is online (the bot refuses /imagine when none is) without drawing yet."""
        await self.queue.worker_heartbeat(WORKER_ID, device="cpu", model="tiny", batch_images=8)

    async def start(self, *, render: bool = True) -> None:
        from generator.delivery import Deliverer
        from generator.scheduler import RenderLoop
        from generator.worker import Worker

        render_loop = None
        if render:
            render_loop = RenderLoop(
                queue=self.queue,
                engine=self._engine(),
                worker_id=WORKER_ID,
                idle_poll_seconds=0.05,
                busy_poll_seconds=0.05,
                claim_interval_seconds=0.05,
                progress_seconds=0.05,
                ranker=self.ranker,
                upscaler=self.upscaler,
                previews=self.previews,
            )
        deliverer = Deliverer(
            queue=self.queue, posters={"discord": self.poster}, poll_seconds=0.05, progress_seconds=0.1
        )
        if render_loop is not None:
            render_loop.on_progress = deliverer.note_progress
            render_loop.on_finished = deliverer.note_finished
            render_loop.on_preview = deliverer.note_preview
        worker = Worker(
            queue=self.queue,
            worker_id=WORKER_ID,
            render=render_loop,
            deliverer=deliverer,
            device="cpu",
            model="tiny",
            registry_seconds=1.0,
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(worker.run(self._stop), name="test-generator")

    def _engine(self) -> Any:
        from generator.engine import ModelEngine
        from tests.worker.harness import FaultyEngine

        engine = ModelEngine(self.model, capacity=8, model_name="tiny")
        if not self.step_delay:
            return engine
        return FaultyEngine(engine, error=RuntimeError("never"), failures=0, step_delay=self.step_delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 30)
            self._task = None
        await self.poster.aclose()


async def wait_for_grid(
    fake: FakeDiscord, interaction: InteractionRecord, timeout: float = 30.0
) -> StoredMessage:
    """The interaction's answer once it carries the finished picture."""
    return await fake.wait_until(
        lambda: (m := fake.original_message(interaction)) is not None and m.attachments and m, timeout=timeout
    )


async def wait_delivered(generator: Generator, job_id: int, timeout: float = 10.0) -> Job:
    async def delivered() -> Job:
        while (job := await generator.queue.get_job(job_id)).delivery is Delivery.PENDING:
            await asyncio.sleep(0.05)
        return job

    return await asyncio.wait_for(delivered(), timeout)


def image_of(message: StoredMessage) -> Image.Image:
    [attachment] = message.attachments
    return Image.open(io.BytesIO(attachment.data))


def ephemeral_text(fake: FakeDiscord, interaction: InteractionRecord) -> str:
    """The content of an interaction's ephemeral answer (asserting it is one)."""
    message = fake.original_message(interaction)
    assert message is not None, "no answer"
    assert message.flags & EPHEMERAL_FLAG, f"not ephemeral: {message.content!r}"
    return message.content


async def answered(fake: FakeDiscord, interaction: InteractionRecord) -> Any:
    """The interaction's answer once it is more than "thinking…" (a deferred answer is edited in later)."""

    def answer() -> Any:
        message = fake.original_message(interaction)
        return message if message is not None and not message.is_loading else None

    return await fake.wait_until(answer, timeout=10.0)


async def first_answer(fake: FakeDiscord, interaction: InteractionRecord) -> dict[str, Any]:
    """The interaction's first real answer (embeds, components), however the bot acknowledged: the
    callback's own message, or — when a busy machine made it defer ("thinking…") — the first edit of
    that loading message. Later edits (rendering, done) do not hide it."""
    callback = await fake.wait_for_callback(interaction, timeout=3.0)
    if callback["type"] == CHANNEL_MESSAGE_WITH_SOURCE:
        return callback["data"]  # type: ignore[no-any-return]
    assert callback["type"] == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, callback
    message = await fake.wait_until(
        lambda: (m := fake.original_message(interaction)) is not None and m.edits and m, timeout=30.0
    )
    return message.edits[0]  # type: ignore[no-any-return]


async def ephemeral_answer(fake: FakeDiscord, interaction: InteractionRecord) -> str:
    """`ephemeral_text` of the answer once it is there, however the bot acknowledged first."""
    await answered(fake, interaction)
    return ephemeral_text(fake, interaction)


async def jobs_of(queue: Queue, user_id: int) -> list[Job]:
    return await queue.jobs_for_user("discord", str(user_id), limit=100)


@contextlib.contextmanager
def no_new_requests(fake: FakeDiscord, method: str, pattern: str) -> Iterator[None]:
    before = len(fake.find_requests(method, pattern))
    yield
    assert len(fake.find_requests(method, pattern)) == before
