"""Private answers inside Discord's 3 seconds, whatever the database does.

    await answer_privately(interaction, work)     # work: async () -> Reply

The work (database reads and writes) starts at once; if its reply is ready within the bot's ack budget it
is the interaction's answer, ephemeral. If not, the interaction is deferred first (ephemeral, "thinking"),
inside the deadline, and the reply replaces the thinking message when it comes. Every command and button
but /imagine and the buttons that queue a job (bot/discord/commands.py `submit`) answers this way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot import messages

if TYPE_CHECKING:
    from bot.discord.client import ImagineBot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reply:
    content: str | None = None
    embed: discord.Embed | None = None

    def parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        if self.content is not None:
            parts["content"] = self.content
        if self.embed is not None:
            parts["embed"] = self.embed
        return parts


async def answer_privately(
    interaction: discord.Interaction[ImagineBot], work: Callable[[], Awaitable[Reply]]
) -> None:
    """Answer with `work()`'s reply, ephemerally, acknowledged within the deadline (module docstring)."""
    task = asyncio.ensure_future(work())
    done, _ = await asyncio.wait({task}, timeout=interaction.client.ack_budget_seconds)
    if not done:
        await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        reply = await task
    except Exception:
        log.exception(
            "command failed",
            extra={
                "action": "command_error",
                "command": interaction.command.name if interaction.command else "?",
            },
        )
        reply = Reply(messages.failed_internal())
    if interaction.response.is_done():
        await interaction.edit_original_response(**{"content": None, "embed": None, **reply.parts()})
    else:
        await interaction.response.send_message(**reply.parts(), ephemeral=True)
