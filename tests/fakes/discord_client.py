"""Running a real discord.py client against a FakeDiscord, with bounded waits and a clean close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import discord
import yarl

from tests.fakes.discord import FakeDiscord

READY_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 5.0
# discord.py waits this long after the last GUILD_CREATE before on_ready (default 2 s).
FAST_GUILD_READY_TIMEOUT_S = 0.05


def point_discord_py_at(fake: FakeDiscord, monkeypatch: object) -> None:
    """Redirect every discord.py REST call and gateway connection to the fake.

    Route.BASE is read when each Route is built (webhooks and interaction callbacks included);
    a plain Client connects to DiscordWebSocket.DEFAULT_GATEWAY (it never asks /gateway/bot).
    """
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)  # type: ignore[attr-defined]
    monkeypatch.setattr(  # type: ignore[attr-defined]
        discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url)
    )


async def start_client(client: discord.Client, *, token: str = "fake-token") -> asyncio.Task[None]:
    """Start `client` and return its task once it is ready; a login or gateway error is raised here."""
    task = asyncio.create_task(client.start(token), name=f"discord-client-{id(client)}")

    async def until_ready() -> None:
        # client.wait_until_ready() cannot be called before login has made its Event, so poll briefly.
        while not client.is_ready():
            if task.done():
                task.result()  # raises LoginFailure and the like
                raise RuntimeError("the client stopped before it was ready")
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(until_ready(), READY_TIMEOUT_S)
    except BaseException:
        await stop_client(client, task)
        raise
    return task


async def stop_client(client: discord.Client, task: asyncio.Task[None]) -> None:
    """Close `client` and wait for its task; the task's own error, if any, is raised."""
    await client.close()
    if not task.done():
        await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT_S)
    if not task.cancelled():
        task.result()


@contextlib.asynccontextmanager
async def running(client: discord.Client, *, token: str = "fake-token") -> AsyncIterator[discord.Client]:
    """`async with running(client):` the client is ready inside and closed after."""
    task = await start_client(client, token=token)
    try:
        yield client
    finally:
        await stop_client(client, task)
