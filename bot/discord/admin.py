"""The admin commands of the Discord frontend: /usage, /settings, /ban, /unban.

Discord hides them from members without Manage Server (`default_permissions`) and offers them only in
servers (`guild_only`), but a server's admins can re-scope a command under Integrations, so every one of
them checks again here (`is_admin`) before reading or changing anything.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

from bot import messages
from bot.discord.replies import Reply, answer_privately
from jobs.models import Platform, UsageFilter
from jobs.reports import UsageRow

if TYPE_CHECKING:
    from bot.discord.client import ImagineBot

    Interaction = discord.Interaction[ImagineBot]
else:
    Interaction = discord.Interaction

PERIODS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=30), "all": None}
TOP_USERS = 5
DAYS_SHOWN = 7
RECENT_PROMPTS = 5
_SNOWFLAKE = re.compile(r"\d{15,20}")


async def is_admin(interaction: Interaction) -> bool:
    """Manage Server or Administrator in this channel, or named as an admin user/role in /settings."""
    permissions = interaction.permissions
    if permissions.manage_guild or permissions.administrator:
        return True
    if interaction.guild_id is None:
        return False
    space = await interaction.client.queue.get_settings(Platform.DISCORD, str(interaction.guild_id))
    if str(interaction.user.id) in space.admin_user_ids:
        return True
    roles = getattr(interaction.user, "roles", [])
    return any(str(role.id) in space.admin_role_ids for role in roles)


async def _admin_refusal(interaction: Interaction, command: str) -> Reply | None:
    """The refusal to send when the caller may not use this admin command, else None."""
    if interaction.guild_id is None:
        return Reply(messages.refused_guild_only(command))
    if not await is_admin(interaction):
        return Reply(messages.refused_admin_only(command))
    return None


def _as_admin(command: str, work: Callable[[], Awaitable[Reply]]) -> Callable[[Interaction], Awaitable[None]]:
    """Answer privately, within the deadline: the refusal for a non-admin, else `work`'s reply."""

    async def answer(interaction: Interaction) -> None:
        async def checked() -> Reply:
            return await _admin_refusal(interaction, command) or await work()

        await answer_privately(interaction, checked)

    return answer


def _replying(reply: Reply) -> Callable[[], Awaitable[Reply]]:
    async def work() -> Reply:
        return reply

    return work


def _admin_only(command: app_commands.Command[Any, ..., Any]) -> app_commands.Command[Any, ..., Any]:
    command = app_commands.guild_only()(command)
    command = app_commands.allowed_installs(guilds=True, users=False)(command)
    return app_commands.default_permissions(manage_guild=True)(command)


# --- the commands ---------------------------------------------------------------------------------------


@app_commands.command(name="usage")
@app_commands.describe(**messages.HELP_USAGE_OPTIONS)
async def usage_command(
    interaction: Interaction,
    period: Literal["day", "week", "month", "all"] = "week",
    user: discord.User | None = None,
) -> None:
    """Who drew how much on this server: per user and day, images, GPU time, failures, recent prompts."""
    await _as_admin("usage", lambda: _usage_reply(interaction, period, user))(interaction)


async def _usage_reply(interaction: Interaction, period: str, user: discord.User | None) -> Reply:
    bot = interaction.client
    span = PERIODS[period]
    filters = UsageFilter(
        platform=Platform.DISCORD,
        guild_id=str(interaction.guild_id),
        user_id=None if user is None else str(user.id),
        since=None if span is None else bot.now() - span,
    )
    queue = bot.queue
    totals = await queue.usage(by="total", filters=filters)
    if not totals:
        return Reply(messages.usage_empty())
    [total] = totals
    by_user = sorted(await queue.usage(by="user", filters=filters), key=lambda r: (-r.images, r.key))
    by_day = (await queue.usage(by="day", filters=filters))[-DAYS_SHOWN:]
    recent = await queue.recent_prompts(filters=filters, limit=RECENT_PROMPTS)

    who = "" if user is None else f" · {user.display_name}"
    embed = discord.Embed(title=f"/imagine usage · {period}{who}", description=_row_text(total))
    embed.add_field(
        name="Top users",
        value="\n".join(
            f"**{discord.utils.escape_markdown(r.label)}** — {_row_text(r)}" for r in by_user[:TOP_USERS]
        )[:1024],
        inline=False,
    )
    embed.add_field(
        name="Per day", value="\n".join(f"`{r.key}` {_row_text(r)}" for r in by_day)[:1024], inline=False
    )
    prompts = [
        f"#{job.id} {discord.utils.escape_markdown(job.user_name or job.user_id)}: "
        f"{discord.utils.escape_markdown(job.prompt[:80])} ({job.status})"
        for job in recent
    ]
    embed.add_field(name="Recent prompts", value="\n".join(prompts)[:1024] or "—", inline=False)
    return Reply(embed=embed)


def _row_text(row: UsageRow) -> str:
    return (
        f"{row.jobs} jobs, {row.images} images, {row.gpu_seconds:.1f} GPU s, "
        f"{row.failures} failed, {row.cancellations} cancelled"
    )


@app_commands.command(name="settings")
@app_commands.describe(**messages.HELP_SETTINGS_OPTIONS)
async def settings_command(
    interaction: Interaction,
    channels: str | None = None,
    max_running: app_commands.Range[int, 0, 100] | None = None,
    max_queued: app_commands.Range[int, 0, 1000] | None = None,
    daily_quota: app_commands.Range[int, 0, 100000] | None = None,
    candidates: app_commands.Range[int, 0, 4] | None = None,
    blocked_words: str | None = None,
) -> None:
    """Show or change this server's /imagine settings: channels, per-user caps, quota, blocked words."""
    changes: dict[str, Any] = {}
    if channels is not None:
        wanted = _SNOWFLAKE.findall(channels)
        if not wanted and channels.strip().lower() not in ("all", "any", "none", "-"):
            bad = Reply(messages.settings_bad("name channels as #mentions or ids, or 'all'"))
            await _as_admin("settings", _replying(bad))(interaction)
            return
        changes["allowed_channels"] = wanted
    # 0 means "the bot's default" for caps (None in the table); the quota's 0 means "no limit"
    if max_running is not None:
        changes["max_running_per_user"] = max_running or None
    if max_queued is not None:
        changes["max_queued_per_user"] = max_queued or None
    if daily_quota is not None:
        changes["daily_quota_images"] = daily_quota
    if candidates is not None:
        changes["candidates_per_image"] = candidates or None
    if blocked_words is not None:
        words = [w.strip() for w in blocked_words.split(",") if w.strip()]
        changes["blocked_words"] = [] if [w.lower() for w in words] in (["none"], ["-"]) else words
    await _as_admin("settings", lambda: _settings_reply(interaction, changes))(interaction)


async def _settings_reply(interaction: Interaction, changes: dict[str, Any]) -> Reply:
    queue = interaction.client.queue
    guild_id = str(interaction.guild_id)
    if changes:
        space = await queue.update_settings(Platform.DISCORD, guild_id, **changes)
    else:
        space = await queue.get_settings(Platform.DISCORD, guild_id)
    limits = queue.limits
    embed = discord.Embed(title="/imagine settings" + (" (changed)" if changes else ""))
    embed.add_field(
        name="Channels",
        value=", ".join(f"<#{c}>" for c in space.allowed_channels) or "every channel",
        inline=False,
    )
    running = space.max_running_per_user or limits.max_running_per_user
    embed.add_field(name="Drawing at once", value=str(running))
    embed.add_field(name="Waiting", value=str(space.max_queued_per_user or limits.max_queued_per_user))
    quota = limits.daily_quota_images if space.daily_quota_images is None else space.daily_quota_images
    embed.add_field(name="Images a day", value=str(quota) if quota else "no limit")
    candidates = space.candidates_per_image or limits.candidates_per_image
    embed.add_field(
        name="Candidates per picture", value=str(candidates) if candidates else "1 on CPU, 2 on GPU"
    )
    embed.add_field(
        name="Blocked words",
        value=discord.utils.escape_markdown(", ".join(space.blocked_words))[:1024] or "none",
        inline=False,
    )
    return Reply(embed=embed)


@app_commands.command()
@app_commands.describe(**messages.HELP_BAN_OPTIONS)
async def ban(interaction: Interaction, user: discord.User, reason: str = "") -> None:
    """Stop someone from using /imagine on this server."""

    async def work() -> Reply:
        await interaction.client.queue.ban(
            Platform.DISCORD,
            str(user.id),
            guild_id=str(interaction.guild_id),
            reason=reason,
            banned_by=str(interaction.user.id),
            now=interaction.client.now(),
        )
        return Reply(messages.banned(user.mention))

    await _as_admin("ban", work)(interaction)


@app_commands.command()
@app_commands.describe(**messages.HELP_UNBAN_OPTIONS)
async def unban(interaction: Interaction, user: discord.User) -> None:
    """Let someone use /imagine on this server again."""

    async def work() -> Reply:
        was_banned = await interaction.client.queue.unban(
            Platform.DISCORD, str(user.id), guild_id=str(interaction.guild_id)
        )
        return Reply(messages.unbanned(user.mention, was_banned))

    await _as_admin("unban", work)(interaction)


ADMIN_COMMANDS: tuple[app_commands.Command[Any, ..., Any], ...] = (
    _admin_only(usage_command),
    _admin_only(settings_command),
    _admin_only(ban),
    _admin_only(unban),
)
