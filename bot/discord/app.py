"""`run_discord(settings, queue)`: the Discord frontend as `imagine serve` runs it (bot/frontends.py).

    async with run_discord(settings, queue):   # logged in, commands synced if changed, ready
        ...                                     # serving slash commands and buttons
    # closed

Settings used: IMAGINE_DISCORD_TOKEN (the bot token), IMAGINE_DISCORD_DEV_GUILD_ID (sync the commands
to that guild, instantly, instead of globally) and IMAGINE_DATA_DIR (where the hash of the last synced
command definitions is kept). Results are posted by the generator process through
bot/discord/poster.py, which needs the same token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import discord

from bot.discord.client import ImagineBot
from bot.discord.sync import SYNC_STATE_FILENAME
from jobs.errors import SettingsError
from jobs.queue import Queue
from jobs.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 60.0  # login + gateway + guilds; a wrong token fails at once (LoginFailure)
CLOSE_TIMEOUT_SECONDS = 5.0
DISCORD_API_URL = Settings.model_fields["discord_api_url"].default


@contextlib.asynccontextmanager
async def run_discord(settings: Settings, queue: Queue) -> AsyncIterator[ImagineBot]:
    if settings.discord_token is None:
        raise SettingsError("IMAGINE_DISCORD_TOKEN is not set: the Discord frontend needs the bot token")
    use_api_url(settings.discord_api_url)
    bot = ImagineBot(
        queue=queue,
        sync_state_path=settings.data_dir / SYNC_STATE_FILENAME,
        dev_guild_id=settings.discord_dev_guild_id,
    )
    task = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()), name="discord")
    try:
        await _until_ready(bot, task)
        log.info("discord ready", extra={"action": "discord_ready", "user": str(bot.user)})
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, CLOSE_TIMEOUT_SECONDS)


def use_api_url(url: str) -> None:
    """Send discord.py's REST calls (and so its gateway lookup) to `url` when it is not Discord's own.

    discord.py reads one class attribute for every route (`Route.BASE`) and has no per-client setting, so
    this process-wide assignment is the way; the bot process runs one Discord client."""
    if url.rstrip("/") != DISCORD_API_URL:
        discord.http.Route.BASE = url.rstrip("/")


async def _until_ready(bot: ImagineBot, task: asyncio.Task[None]) -> None:
    async def ready() -> None:
        while not bot.is_ready():
            if task.done():
                task.result()  # LoginFailure and the like, with their own message
                raise RuntimeError("the Discord client stopped before it was ready")
            await asyncio.sleep(0.05)

    await asyncio.wait_for(ready(), READY_TIMEOUT_SECONDS)
