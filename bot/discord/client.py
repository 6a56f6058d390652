"""The Discord client of the /imagine bot: commands, buttons, command sync, dependencies injected.

    ImagineBot(queue=…, sync_state_path=…, dev_guild_id=…, clock=…)
    ├── tree: /imagine /queue /history /cancel (bot/discord/commands.py)
    │         /usage /settings /ban /unban (bot/discord/admin.py, admins only)
    ├── setup_hook: the button items (bot/discord/views.py) and a sync if the definitions changed
    └── on_imagine_button: clicks on any /imagine message, even one posted before a restart

It owns nothing it did not make: the queue (and its database engine) belongs to whoever made the bot,
`run_discord` in bot/discord/app.py for `imagine serve` (discord.py examples/advanced_startup.py).
The results are posted by the generator's delivery loop (bot/discord/poster.py), not by this client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from bot import messages
from bot.buttons import ButtonId
from bot.discord.admin import ADMIN_COMMANDS
from bot.discord.commands import COMMANDS, on_button
from bot.discord.sync import sync_if_changed
from bot.discord.views import BUTTON_ITEMS
from jobs.models import utcnow
from jobs.queue import Queue

log = logging.getLogger(__name__)

# Answer within this even if the queue has not: a deferred ("thinking") answer, edited when it has.
# Far inside Discord's 3 s, and the p99 target of bench/ack_latency.py (300 ms) under a burst.
ACK_BUDGET_SECONDS = 0.15
GENERATORS_CACHE_SECONDS = 5.0
# Enqueues in flight at once. A burst of 100 concurrent transactions only fights over the database's
# write lock (SQLite) and the event loop; a few at a time finish sooner and leave the loop free to ack.
ENQUEUE_CONCURRENCY = 4


# AutoSharded: Discord says how many gateway shards the app needs (one below 2,500 servers); nothing to set.
class ImagineBot(discord.AutoShardedClient):
    def __init__(
        self,
        *,
        queue: Queue,
        sync_state_path: Path | None,
        dev_guild_id: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        guild_ready_timeout: float = 2.0,
        ack_budget_seconds: float = ACK_BUDGET_SECONDS,
        **options: Any,
    ) -> None:
        # Slash commands and buttons arrive whatever the intents; `guilds` keeps channels in the cache.
        super().__init__(
            intents=discord.Intents(guilds=True), guild_ready_timeout=guild_ready_timeout, **options
        )
        self.queue = queue
        self.sync_state_path = sync_state_path  # None: never sync (a second bot on the same app)
        self.dev_guild_id = dev_guild_id
        self.now = clock
        self.ack_budget_seconds = ack_budget_seconds
        self._generators_seen_at = -GENERATORS_CACHE_SECONDS
        self.enqueue_slots = asyncio.Semaphore(ENQUEUE_CONCURRENCY)
        self.tree: app_commands.CommandTree[ImagineBot] = app_commands.CommandTree(self)
        self.tree.error(self.on_app_command_error)
        for command in (*COMMANDS, *ADMIN_COMMANDS):
            self.tree.add_command(command)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*BUTTON_ITEMS)
        if self.sync_state_path is not None and self.application_id is not None:
            await sync_if_changed(
                self.tree,
                application_id=self.application_id,
                state_path=self.sync_state_path,
                dev_guild_id=self.dev_guild_id,
            )

    async def generators_online(self) -> bool:
        """Whether a generator was seen lately; a yes is trusted for a few seconds (one query, not one
        per command, in a burst)."""
        if time.monotonic() - self._generators_seen_at < GENERATORS_CACHE_SECONDS:
            return True
        if await self.queue.workers_alive():
            self._generators_seen_at = time.monotonic()
            return True
        return False

    async def on_imagine_button(
        self, interaction: discord.Interaction[ImagineBot], button_id: ButtonId
    ) -> None:
        try:
            await on_button(interaction, button_id)
        except Exception:
            # DynamicItem errors only reach the log: answer the user too (examples/modals/basic.py)
            log.exception("button failed", extra={"action": "button_error", "button": button_id.custom_id})
            await _answer_error(interaction)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.name if interaction.command else "?"
        log.error("command failed", exc_info=error, extra={"action": "command_error", "command": command})
        await _answer_error(interaction)


async def _answer_error(interaction: discord.Interaction) -> None:
    try:
        if interaction.response.is_done():
            await interaction.followup.send(messages.failed_internal(), ephemeral=True)
        else:
            await interaction.response.send_message(messages.failed_internal(), ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the user about the error", extra={"action": "error_reply_failed"})
