"""Fixtures for the Discord tests: a fake Discord on 127.0.0.1 and real discord.py clients pointed at it.

    async def test_ping(fake_discord, discord_client_runner):
        client = await discord_client_runner(MyBot(..., guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S))
        interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a cat"})
        await fake_discord.wait_for_callback(interaction, timeout=3.0)       # the ack
        message = await fake_discord.wait_until(lambda: (m := fake_discord.original_message(interaction))
                                                and m.attachments and m)     # the grid
        click = await fake_discord.click_button(message.id, message.custom_ids[0])

Faults, as on every fake (tests/fakes/server.py): `fake_discord.rate_limit(r"^/webhooks/", retry_after=0.1)`,
`server_error(r"PATCH ^/channels/", times=2, status=502)`, `fail(route, status=403)`, `slow(route, 0.3)`,
`clear_faults()`; Discord's own: `upload_limit_bytes = n`, `advance_clock(16 * 60)` or
`expire_token(token)` (10062), `await request_reconnect()` (op 7), `await close_gateway(4000)`,
`await invalidate_session()` (op 9).
Reads: `requests` / `find_requests(method, path_regex)`, `messages`, `channel_messages()`, `interactions`,
`global_commands`, `guild_commands`, `command_sync_count`, `identify_count`, `resume_count`.

The story fixtures below the line (`make_bot`, `generator`, `queue`, `clock`, …) run whole /imagine
stories: the queue on a migrated database, the real bot, the real generator on a tiny checkpoint. Their
plain helpers (`wait_for_grid`, `advance`, `Generator`, …) are imported from tests/discord/stories.py.
This suite keeps databases of its own: `db_url`, `queue` and the session's `sqlite_template` and
`postgres_url` override tests/jobs/fixtures.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import discord
import pytest
from sqlalchemy import text

from bot.discord.client import ImagineBot
from jobs.db import connect, migrate
from jobs.queue import Queue
from jobs.schema import metadata
from tests.discord.stories import STORY_LIMITS, Clock, Generator
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import (
    FAST_GUILD_READY_TIMEOUT_S,
    point_discord_py_at,
    start_client,
    stop_client,
)
from tests.jobs.databases import copy_sqlite, fresh_postgres_database, require_postgres, sqlite_url


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """A started FakeDiscord; discord.py's REST base and gateway URL point at it for this test."""
    async with FakeDiscord() as fake:
        point_discord_py_at(fake, monkeypatch)
        yield fake
    assert not fake.handler_errors, f"the fake Discord itself failed: {fake.handler_errors!r}"


@pytest.fixture
async def discord_client_runner(
    fake_discord: FakeDiscord,
) -> AsyncIterator[Callable[[discord.Client], Awaitable[discord.Client]]]:
    """`await run(client)` starts a client against the fake and waits for READY; all are closed at teardown.

    Close one early (a restart) with `await client.close()`.
    """
    started: list[tuple[discord.Client, asyncio.Task[None]]] = []

    async def run(client: discord.Client) -> discord.Client:
        started.append((client, await start_client(client, token=fake_discord.token)))
        return client

    yield run
    for client, task in reversed(started):
        await stop_client(client, task)


# -- whole stories: database, queue, bot and generator --------------------------------------------------


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


@pytest.fixture(scope="session")
def tiny_helpers(tiny_checkpoints: tuple[Path, Path]) -> tuple[Any, Any]:
    """The tiny CLIP ranker and Swin2SR upscaler, loaded through the production path."""
    from generator.model.clip import ClipRanker
    from generator.model.upscale import Upscaler
    from generator.testing import tiny_extras

    clip, upscaler = tiny_extras(tiny_checkpoints[0])
    return ClipRanker.load(clip), Upscaler.load(upscaler)


@pytest.fixture
async def generator(
    queue: Queue, tiny_model: Any, tiny_helpers: tuple[Any, Any], fake_discord: FakeDiscord, clock: Clock
) -> AsyncIterator[Generator]:
    """Registered as online; `await generator.start()` to draw and deliver."""
    ranker, upscaler = tiny_helpers
    gen = Generator(queue, tiny_model, fake_discord, clock, ranker=ranker, upscaler=upscaler)
    await gen.register()
    yield gen
    await gen.stop()
