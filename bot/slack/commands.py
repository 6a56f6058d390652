"""The slash commands: one async method per command, named after it; its docstring is its help.

Every handler answers through ``ack`` (an ephemeral reply, within Slack's 3 seconds) or, when the work
outlasts the deadline or a burst is on, acks at once and answers through ``respond`` (the command's
``response_url``): `bot.slack.acks`. Bolt injects arguments by name (``slack_bolt/kwargs_injection``).
Everything is keyed by the workspace (``team_id``): jobs, settings, bans, admins.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import texts
from bot.slack.acks import (
    ACK_DEADLINE_SECONDS,
    BUSY_ENQUEUE_COUNT,
    AcksFirst,
    Answer,
    answer_within_deadline,
)
from bot.slack.admins import SlackAdmins
from bot.slack.jobs import SlackJobs, SlackRefusal, workspace_refs
from bot.slack.options import HelpRequested, parse_imagine_text
from jobs import errors
from jobs.models import Enqueued, EnqueueRequest, MessageRefs, Platform, Status, UsageFilter, utcnow
from jobs.queue import Queue

log = logging.getLogger(__name__)

HISTORY_COUNT = 10
PLATFORM = Platform.SLACK.value


# Slack's escaped mentions in command text ("Escape channels, users, and links" on): <@U123|ann>, <#C1|art>.
_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]{2,})$")
_CHANNEL = re.compile(r"^<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>$|^([CGD][A-Z0-9]{2,})$")


class SlackCommands:
    """The slash commands of one Slack app; dependencies are injected, none is owned."""

    def __init__(
        self,
        *,
        queue: Queue,
        jobs: SlackJobs,
        admins: SlackAdmins,
        ack_deadline_seconds: float = ACK_DEADLINE_SECONDS,
    ) -> None:
        self.queue = queue
        self.jobs = jobs
        self.admins = admins
        self.ack_deadline_seconds = ack_deadline_seconds
        self._in_flight = 0  # /imagine commands between receipt and the queue's answer
        self._acks = AcksFirst()

    # --- for everyone ---------------------------------------------------------------------------------

    async def imagine(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Draw pictures: `/imagine <prompt> [--images N] [--seed S] [--guidance G]`."""

        is_busy = self._in_flight >= BUSY_ENQUEUE_COUNT
        self._in_flight += 1
        self._acks.received()

        async def ack_once(**reply: Any) -> None:
            try:
                await ack(**reply)
            finally:
                self._acks.sent()

        async def work() -> str | Answer:
            try:
                if is_busy:
                    await self._acks.wait_until_sent()  # a burst: every ack goes out before more work
                return await enqueue()
            finally:
                self._in_flight -= 1

        async def enqueue() -> str | Answer:
            try:
                parsed = parse_imagine_text(command.get("text", ""))
            except HelpRequested as exc:
                return texts.usage_help(exc.reason)
            except errors.Refused as exc:  # a bad option: the reason ends with the usage line
                return texts.refused(exc.reason)
            request = EnqueueRequest(
                platform=PLATFORM,
                user_id=command["user_id"],
                user_name=command.get("user_name", ""),
                guild_id=command["team_id"],
                channel_id=command["channel_id"],
                prompt=parsed.prompt,
                options=parsed.options,
                refs=MessageRefs(
                    response_url=command.get("response_url"),
                    extra=workspace_refs(command.get("enterprise_id")),
                ),
            )
            try:
                enqueued = await self.jobs.enqueue(request, client=client)
            except SlackRefusal as exc:
                return exc.text
            # The channel hears about it only once it is queued (refusals stay between us), after the ack.
            return Answer(
                texts.queued(enqueued.job, enqueued.position, enqueued.eta),
                then=lambda: self._placeholder(enqueued, client, respond),
            )

        await answer_within_deadline(
            ack_once, respond, work, deadline_seconds=0.0 if is_busy else self.ack_deadline_seconds
        )

    async def _placeholder(self, enqueued: Enqueued, client: AsyncWebClient, respond: AsyncRespond) -> None:
        try:
            await self.jobs.post_placeholder(enqueued, client=client)
        except SlackRefusal as exc:  # the bot was removed from the channel meanwhile: job cancelled
            await respond(text=exc.text, response_type="ephemeral", replace_original=False)

    async def imagine_queue(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """Where your prompts are in the queue, and when they should be ready: `/imagine-queue`."""

        async def work() -> str:
            active = await self.queue.jobs_for_user(
                PLATFORM, command["user_id"], statuses=(Status.QUEUED, Status.RUNNING)
            )
            entries: list[tuple[Any, int, timedelta | None]] = []
            for job in sorted(active, key=lambda j: j.id):
                if job.guild_id != command["team_id"]:
                    continue
                position, eta = await self.queue.position(job.id)
                entries.append((job, position, eta))
            workers = await self.queue.workers_alive()
            return texts.queue_summary(entries, len(workers))

        await answer_within_deadline(ack, respond, work, deadline_seconds=self.ack_deadline_seconds)

    async def imagine_history(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """Your recent prompts here, with their seeds and outcomes: `/imagine-history`."""

        async def work() -> str:
            jobs = await self.queue.jobs_for_user(PLATFORM, command["user_id"], limit=50)
            mine_here = [job for job in jobs if job.guild_id == command["team_id"]][:HISTORY_COUNT]
            return texts.history(mine_here)

        await answer_within_deadline(ack, respond, work, deadline_seconds=self.ack_deadline_seconds)

    # --- for admins -----------------------------------------------------------------------------------

    async def imagine_usage(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Workspace usage (admins): `/imagine-usage [days] [@user]`."""

        async def work() -> str:
            if refusal := await self._admin_refusal(client, command):
                return refusal
            days, user_id = 7, None
            for word in command.get("text", "").split():
                if word.isdigit():
                    days = int(word)
                elif match := _USER.match(word):
                    user_id = match[1] or match[2]
                else:
                    return texts.usage_bad(f"I don't understand `{word}`.")
            if not 1 <= days <= 90:
                return texts.usage_bad(f"days must be from 1 to 90, got {days}.")
            filters = UsageFilter(
                platform=PLATFORM,
                guild_id=command["team_id"],
                user_id=user_id,
                since=utcnow() - timedelta(days=days),
            )
            total = await self.queue.usage(by="total", filters=filters)
            by_user = await self.queue.usage(by="user", filters=filters)
            return texts.usage_report(total, by_user, days=days, user_id=user_id)

        await answer_within_deadline(ack, respond, work, deadline_seconds=self.ack_deadline_seconds)

    async def imagine_settings(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Show or change this workspace's /imagine settings (admins): `/imagine-settings [name value…]`."""

        async def work() -> str:
            if refusal := await self._admin_refusal(client, command):
                return refusal
            team_id = command["team_id"]
            defaults = {
                "daily_quota_images": self.queue.limits.daily_quota_images,
                "max_running_per_user": self.queue.limits.max_running_per_user,
                "max_queued_per_user": self.queue.limits.max_queued_per_user,
                "candidates_per_image": self.queue.limits.candidates_per_image or 0,
            }
            words = command.get("text", "").split()
            if not words:
                return texts.settings_shown(
                    await self.queue.get_settings(PLATFORM, team_id), defaults=defaults
                )
            try:
                what, changes = await self._settings_change(team_id, words)
            except ValueError as exc:
                return texts.settings_bad(str(exc))
            space = await self.queue.update_settings(PLATFORM, team_id, **changes)
            log.info("settings changed", extra={"action": "slack_settings", "team_id": team_id, "what": what})
            return texts.settings_changed(what, space, defaults=defaults)

        await answer_within_deadline(ack, respond, work, deadline_seconds=self.ack_deadline_seconds)

    async def imagine_ban(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Ban someone here, lift a ban, or list bans (admins): `/imagine-ban @user [reason]`."""

        async def work() -> str:
            if refusal := await self._admin_refusal(client, command):
                return refusal
            team_id = command["team_id"]
            words = command.get("text", "").split()
            if words == ["list"]:
                return texts.ban_list(await self.queue.bans(PLATFORM, team_id))
            if len(words) == 2 and words[0] in ("remove", "unban", "lift"):
                user_id = _user_id(words[1])
                if user_id is None:
                    return texts.ban_bad(f"`{words[1]}` is not a user mention.")
                return texts.unbanned(user_id, await self.queue.unban(PLATFORM, user_id, guild_id=team_id))
            if not words or (user_id := _user_id(words[0])) is None:
                return texts.ban_bad("Name the user to ban with an @mention.")
            reason = " ".join(words[1:])
            await self.queue.ban(
                PLATFORM, user_id, guild_id=team_id, reason=reason, banned_by=command["user_id"]
            )
            log.info("user banned", extra={"action": "slack_ban", "team_id": team_id, "user_id": user_id})
            return texts.banned(user_id, reason)

        await answer_within_deadline(ack, respond, work, deadline_seconds=self.ack_deadline_seconds)

    # --- helpers --------------------------------------------------------------------------------------

    async def is_admin(self, client: AsyncWebClient, *, team_id: str, user_id: str) -> bool:
        """Configured ids, the workspace's extra admins (`/imagine-settings admins`), Slack admins/owners."""
        space = await self.queue.get_settings(PLATFORM, team_id)
        if user_id in space.admin_user_ids:
            return True
        return await self.admins.is_admin(client, team_id=team_id, user_id=user_id)

    async def _admin_refusal(self, client: AsyncWebClient, command: dict[str, Any]) -> str | None:
        try:
            if await self.is_admin(client, team_id=command["team_id"], user_id=command["user_id"]):
                return None
        except SlackApiError:
            log.warning("admin check failed", exc_info=True, extra={"action": "admin_check_failed"})
            return texts.refused_admin_check_failed()
        return texts.refused_admin_only(command.get("command", "this command"))

    async def _settings_change(self, team_id: str, words: list[str]) -> tuple[str, dict[str, Any]]:
        """``["quota", "50"]`` → ("the daily quota", {"daily_quota_images": 50}); ValueError if unclear."""
        name, values = words[0].lower(), words[1:]
        if name in ("channels", "channel"):
            if values in (["all"], ["any"], ["every"]):
                return "the allowed channels", {"allowed_channels": ()}
            channels = [_channel_id(value) for value in values]
            if not channels or None in channels:
                raise ValueError("Name channels as #mentions, or `channels all`.")
            return "the allowed channels", {"allowed_channels": tuple(channels)}
        limits = {
            "quota": "daily_quota_images",
            "running": "max_running_per_user",
            "queued": "max_queued_per_user",
            "candidates": "candidates_per_image",
        }
        if name in limits:
            if len(values) != 1:
                raise ValueError(f"`{name}` takes one number (or `default`).")
            value = None if values[0] == "default" else _whole(values[0], allow_zero=name == "quota")
            if name == "candidates" and value is not None and value > 4:
                raise ValueError("`candidates` is from 1 to 4 (or `default`).")
            return f"`{name}`", {limits[name]: value}
        if name in ("block", "unblock"):
            words_given = [value.lower() for value in values if value.strip()]
            if not words_given:
                raise ValueError(f"`{name}` needs at least one word.")
            current = (await self.queue.get_settings(PLATFORM, team_id)).blocked_words
            if name == "block":
                blocked = tuple(dict.fromkeys([*current, *words_given]))
            else:
                blocked = tuple(word for word in current if word not in words_given)
            return "the blocked words", {"blocked_words": blocked}
        if name == "admins":
            if values == ["none"]:
                return "the extra admins", {"admin_user_ids": ()}
            users = [_user_id(value) for value in values]
            if not users or None in users:
                raise ValueError("Name admins as @mentions, or `admins none`.")
            return "the extra admins", {"admin_user_ids": tuple(users)}
        raise ValueError(f"There is no setting `{name}`.")


def _user_id(word: str) -> str | None:
    match = _USER.match(word)
    return (match[1] or match[2]) if match else None


def _channel_id(word: str) -> str | None:
    match = _CHANNEL.match(word)
    return (match[1] or match[2]) if match else None


def _whole(text: str, *, allow_zero: bool) -> int:
    if not text.isdigit() or (int(text) == 0 and not allow_zero):
        raise ValueError(f"`{text}` is not a whole number{'' if allow_zero else ' above 0'}.")
    return int(text)
