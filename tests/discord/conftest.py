"""Fixtures for the Discord tests: a fake Discord on 127.0.0.1 and real discord.py clients pointed at it.

    async def test_ping(fake_discord, discord_client_runner):
        client = await discord_client_runner(MyBot(..., guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S))
        interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a cat"})
        await fake_discord.wait_for_callback(interaction, timeout=3.0)       # the ack
        message = await fake_discord.wait_for(lambda: (m := fake_discord.original_message(interaction))
                                              and m.attachments and m)       # the grid
        click = await fake_discord.click_button(message.id, message.custom_ids[0])

Faults: `fake_discord.rate_limit_next(r"^/webhooks/", retry_after=0.1)`, `fail_next(pattern, status=502)`,
`upload_limit_bytes = n`, `advance_clock(16 * 60)` or `expire_token(token)` (10062), `callback_delay_s`,
`await request_reconnect()` (op 7), `await close_gateway(4000)`, `await invalidate_session()` (op 9).
Reads: `requests` / `find_requests(method, path_regex)`, `messages`, `channel_messages()`, `interactions`,
`global_commands`, `guild_commands`, `command_sync_count`, `identify_count`, `resume_count`.
"""

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
