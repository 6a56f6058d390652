"""The pieces of a whole /imagine story on Discord: a migrated database, the queue, the bot (a real
discord.Client against the fake Discord), and the real generator (render + delivery loops on a tiny
checkpoint, in this process) posting through the real DiscordPoster.

Import the fixtures into a test module: `from tests.discord.stories import *  # noqa: F403`.
Time: `clock` is the bot's and the poster's clock (aware UTC); move it with the fake's
(`advance(fake_discord, clock, seconds)`) to age interaction tokens without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import text

from bot.discord.client import ImagineBot
from bot.discord.poster import DiscordPoster
from jobs.db import connect, migrate
from jobs.models import Delivery, Job, utcnow
from jobs.queue import Limits, Queue
from jobs.schema import metadata
from tests.fakes.discord import EPHEMERAL_FLAG, FakeDiscord, InteractionRecord, StoredMessage
from tests.fakes.discord_client import FAST_GUILD_READY_TIMEOUT_S
from tests.jobs.databases import ENGINES, copy_sqlite, fresh_postgres_database, require_postgres, sqlite_url

__all__ = [
    "ENGINES",
    "Clock",
    "Generator",
    "advance",
    "clock",
    "db_url",
    "ephemeral_text",
    "generator",
    "image_of",
    "jobs_of",
    "make_bot",
    "postgres_url",
    "queue",
    "sqlite_template",
    "tiny_checkpoints",
    "tiny_model",
    "wait_delivered",
    "wait_for_grid",
]

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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("discord-sqlite") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This session's own migrated Postgres database (skipped with the reason when unreachable)."""
    require_postgres()
    with fresh_postgres_database("_discord") as url:
        migrate(url)
        yield url


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite file; `@pytest.mark.parametrize("db_url", ENGINES, indirect=True)` runs a test on
    the session's Postgres database (emptied by `queue`) too."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")  # type: ignore[no-any-return]
    return copy_sqlite(sqlite_template, tmp_path / "imagine.db")


@pytest.fixture
async def queue(db_url: str) -> AsyncIterator[Queue]:
    engine = connect(db_url)
    if engine.dialect.name == "postgresql":
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield Queue(engine=engine, limits=STORY_LIMITS)
    await engine.dispose()


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from generator.testing import make_tiny_checkpoints

    return make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoints: tuple[Path, Path]) -> Any:
    import torch

    from generator.model.dalle import DalleMini

    # Two cores shared by many: one thread per step is several times faster than fighting for two.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return DalleMini.load(*tiny_checkpoints)


@pytest.fixture
def make_bot(
    queue: Queue, clock: Clock, tmp_path: Path, discord_client_runner: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[ImagineBot]]:
    """`await make_bot()` starts an ImagineBot against the fake; call again after a close to restart."""

    async def make(bot_class: type[ImagineBot] = ImagineBot, **overrides: Any) -> ImagineBot:
        options: dict[str, Any] = {
            "queue": queue,
            "sync_state_path": tmp_path / "discord-commands.json",
            "clock": clock.now,
            "guild_ready_timeout": FAST_GUILD_READY_TIMEOUT_S,
            **overrides,
        }
        return await discord_client_runner(bot_class(**options))  # type: ignore[no-any-return]

    return make


class Generator:
    """The generator process's loops in this process: `start()` renders and delivers, `stop()` stops."""

    def __init__(self, queue: Queue, model: Any, fake: FakeDiscord, clock: Clock) -> None:
        self.queue = queue
        self.model = model
        self.poster = DiscordPoster(token=fake.token, clock=clock.now, inline_retry_seconds=0.5)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """Say a generator is online (the bot refuses /imagine when none is) without drawing yet."""
        await self.queue.worker_heartbeat(WORKER_ID, device="cpu", model="tiny", batch_images=8)

    async def start(self, *, render: bool = True) -> None:
        from generator.delivery import Deliverer
        from generator.engine import ModelEngine
        from generator.scheduler import RenderLoop
        from generator.worker import Worker

        render_loop = None
        if render:
            render_loop = RenderLoop(
                queue=self.queue,
                engine=ModelEngine(self.model, capacity=8, model_name="tiny"),
                worker_id=WORKER_ID,
                idle_poll_seconds=0.05,
                busy_poll_seconds=0.05,
                claim_interval_seconds=0.05,
                progress_seconds=0.05,
            )
        deliverer = Deliverer(
            queue=self.queue, posters={"discord": self.poster}, poll_seconds=0.05, progress_seconds=0.1
        )
        if render_loop is not None:
            render_loop.on_progress = deliverer.note_progress
            render_loop.on_finished = deliverer.note_finished
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

    async def stop(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 30)
            self._task = None
        await self.poster.aclose()


@pytest.fixture
async def generator(
    queue: Queue, tiny_model: Any, fake_discord: FakeDiscord, clock: Clock
) -> AsyncIterator[Generator]:
    """Registered as online; `await generator.start()` to draw and deliver."""
    gen = Generator(queue, tiny_model, fake_discord, clock)
    await gen.register()
    yield gen
    await gen.stop()


async def wait_for_grid(
    fake: FakeDiscord, interaction: InteractionRecord, timeout: float = 30.0
) -> StoredMessage:
    """The interaction's answer once it carries the finished picture."""
    return await fake.wait_for(
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


async def jobs_of(queue: Queue, user_id: int) -> list[Job]:
    return await queue.jobs_for_user("discord", str(user_id), limit=100)


@contextlib.contextmanager
def no_new_requests(fake: FakeDiscord, method: str, pattern: str) -> Iterator[None]:
    before = len(fake.find_requests(method, pattern))
    yield
    assert len(fake.find_requests(method, pattern)) == before
