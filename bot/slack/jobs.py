"""From a Slack request to a queued job with its placeholder in the channel.

Shared by ``/imagine`` (`bot.slack.commands`) and the reroll/variation/pick buttons
(`bot.slack.actions`):

1. `SlackJobs.enqueue` checks what only Slack knows — is the bot in the channel (otherwise the
   result could never be posted), is a generator online — then hands the request to the queue, whose
   `jobs.errors.Refused` reasons are shown as they are. Every refusal happens before a row is written.
2. `SlackJobs.post_placeholder` posts the channel message the poster later edits (progress, then
   "done") and records its ``ts`` on the job. The result never depends on the ``response_url``
   (5 uses, 30 minutes): the bot token posts it, from the generator's delivery loop.

The job may finish before its placeholder is recorded (a pick, a tiny model); the placeholder is then
set to its final text here, so no message is left saying "queued".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import texts
from bot.slack.blocks import progress_blocks
from bot.slack.errors import NOT_IN_CHANNEL_ERRORS, slack_error
from jobs import errors
from jobs.models import Enqueued, EnqueueRequest, Job, Kind, Status
from jobs.queue import Queue

log = logging.getLogger(__name__)

MEMBERSHIP_CACHE_SECONDS = 300.0  # "the bot is in this channel" is remembered this long
WORKERS_CACHE_SECONDS = 5.0  # "a generator is online" is remembered this long
#: Enqueues run at most this many at a time: the database takes them one by one anyway (SQLite) or
#: through a small pool (Postgres); more at once only burns the event loop that must send the acks.
MAX_CONCURRENT_ENQUEUES = 4


def status_blocks(text: str) -> list[dict[str, Any]]:
    """A placeholder's final form: its status sentence, buttons gone (plain text: prompts stay inert)."""
    return [{"type": "section", "text": {"type": "plain_text", "text": text[:3000], "emoji": True}}]


class SlackRefusal(Exception):
    """A request turned down before anything was queued; ``text`` is the ephemeral answer, ready to show."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class SlackJobs:
    """Enqueues Slack requests and posts their placeholders. One per process; holds small caches only."""

    def __init__(
        self,
        *,
        queue: Queue,
        require_worker: bool = True,
        max_concurrent_enqueues: int = MAX_CONCURRENT_ENQUEUES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.require_worker = require_worker
        self._clock = clock
        self._member_until: dict[tuple[str, str], float] = {}  # (team, channel) → expiry
        self._workers_until = 0.0
        # Checks in flight, shared by concurrent requests: a burst of 100 commands in one channel asks
        # Slack and the database once, not 100 times.
        self._checking: dict[object, asyncio.Future[None]] = {}
        self._enqueue_slots = asyncio.Semaphore(max_concurrent_enqueues)

    async def enqueue(self, request: EnqueueRequest, *, client: AsyncWebClient) -> Enqueued:
        """Queue `request`, or raise `SlackRefusal` (nothing written) with the reason to show."""
        await self._require_membership(client, request.guild_id, request.channel_id)
        await self._require_worker()
        try:
            async with self._enqueue_slots:
                return await self.queue.enqueue(request)
        except errors.Refused as exc:
            raise SlackRefusal(texts.refused(exc.reason)) from exc

    async def post_placeholder(self, enqueued: Enqueued, *, client: AsyncWebClient) -> str | None:
        """Post the job's channel message and record its ts; None if Slack refused (the result still
        comes, as a new message). Raises `SlackRefusal` if the bot was removed from the channel: the
        job is then cancelled, since its result could not be posted either."""
        job = enqueued.job
        text = texts.placeholder_queued(job, enqueued.position, enqueued.eta)
        try:
            reply_to = job.refs.extra.get("reply_to_ts") if job.kind is Kind.UPSCALE else None
            posted = await client.chat_postMessage(
                channel=job.channel_id,
                text=texts.escape(text),
                blocks=progress_blocks(job.id, status=text),
                thread_ts=str(reply_to) if reply_to else None,
            )
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in NOT_IN_CHANNEL_ERRORS:
                self._member_until.pop((job.guild_id, job.channel_id), None)
                await self.queue.cancel(job.id, job.user_id, is_admin=True)
                raise SlackRefusal(texts.refused_not_in_channel(job.channel_id)) from exc
            log.warning(
                "placeholder not posted: %s", error, extra={"action": "placeholder_failed", "job_id": job.id}
            )
            return None
        ts = str(posted["ts"])
        current = await self.queue.record_message_refs(job.id, placeholder_message_id=ts)
        # Finished already (a pick, a fast render)? The poster may not have seen the ts: finish it here.
        if current.status not in (Status.QUEUED, Status.RUNNING):
            await self._finalize_placeholder(client, current, ts)
        return ts

    async def _finalize_placeholder(self, client: AsyncWebClient, job: Job, ts: str) -> None:
        text = (
            texts.placeholder_done(job)
            if job.status is Status.DONE
            else texts.placeholder_failed(job, job.error or str(job.status))
        )
        try:
            await client.chat_update(
                channel=job.channel_id, ts=ts, text=texts.escape(text), blocks=status_blocks(text)
            )
        except SlackApiError as exc:
            log.info(
                "placeholder not finalized: %s", exc, extra={"action": "placeholder_failed", "job_id": job.id}
            )

    async def _shared(self, key: object, check: Callable[[], Awaitable[None]]) -> None:
        """Run `check`, or wait for the same check another request started; its refusal is everyone's."""
        running = self._checking.get(key)
        if running is None:
            running = asyncio.ensure_future(check())
            self._checking[key] = running
            running.add_done_callback(lambda _: self._checking.pop(key, None))
        await asyncio.shield(running)

    async def _require_membership(self, client: AsyncWebClient, team_id: str, channel_id: str) -> None:
        """Refuse at once in a channel the bot is not in, instead of queueing a job it cannot post."""
        key = (team_id, channel_id)
        if self._member_until.get(key, 0.0) > self._clock():
            return
        await self._shared(("member", key), lambda: self._ask_membership(client, key))

    async def _ask_membership(self, client: AsyncWebClient, key: tuple[str, str]) -> None:
        channel_id = key[1]
        try:
            info = await client.conversations_info(channel=channel_id)
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in NOT_IN_CHANNEL_ERRORS:
                raise SlackRefusal(texts.refused_not_in_channel(channel_id)) from exc
            # A missing scope or a Slack hiccup: don't block the user; the placeholder post will tell.
            log.info("conversations.info failed: %s", error, extra={"action": "membership_unknown"})
            return
        channel = info.get("channel") or {}
        # DMs with the bot carry no is_member; only an explicit False means "not in it".
        if channel.get("is_member") is False:
            raise SlackRefusal(texts.refused_not_in_channel(channel_id))
        self._member_until[key] = self._clock() + MEMBERSHIP_CACHE_SECONDS

    async def _require_worker(self) -> None:
        if not self.require_worker or self._workers_until > self._clock():
            return
        await self._shared("workers", self._ask_workers)

    async def _ask_workers(self) -> None:
        if not await self.queue.workers_alive():
            raise SlackRefusal(texts.refused_no_worker())
        self._workers_until = self._clock() + WORKERS_CACHE_SECONDS


def workspace_refs(enterprise_id: object) -> dict[str, str]:
    """What a job keeps of its Enterprise Grid org, so the poster finds the workspace's installation
    (`team_id` is the job's `guild_id`)."""
    return {"enterprise_id": enterprise_id} if isinstance(enterprise_id, str) and enterprise_id else {}
