"""Fixtures for the Discord tests: a fake Discord on 127.0.0.1 and real discord.py clients pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import discord
import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import point_discord_py_at, start_client, stop_client


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
