"""The buttons under /imagine messages: one async method per action, routed by ``action_id`` pattern.

A button's whole state is its ``action_id`` (``imagine:<action>:<job>[:<image>]``, `bot.slack.blocks`),
so a click on a message posted before a restart works with no memory of it. Each click is acked at
once (no loading state in Slack), then handled; answers to the clicker are ephemeral, through the
click's ``response_url`` (one use per click). Rerolls and variations are new jobs with their own
placeholder, exactly like ``/imagine``; a pick is born done and the poster posts the one image.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.buttons import Action, ButtonId, InvalidCustomId
from bot.slack import texts
from bot.slack.blocks import parse_action
from bot.slack.commands import PLATFORM, SlackCommands
from bot.slack.jobs import SlackJobs, SlackRefusal, workspace_refs
from jobs import errors
from jobs.models import EnqueueRequest, Kind, MessageRefs
from jobs.queue import Queue

log = logging.getLogger(__name__)

_KIND_OF_ACTION = {
    Action.REROLL: Kind.REROLL,
    Action.VARIATION: Kind.VARIATION,
    Action.PICK: Kind.PICK,
    Action.UPSCALE: Kind.UPSCALE,
}


class SlackActions:
    """Handles every /imagine button; registered once with ``app.action(ACTION_ID_PATTERN)``."""

    def __init__(self, *, queue: Queue, jobs: SlackJobs, commands: SlackCommands) -> None:
        self.queue = queue
        self.jobs = jobs
        self.commands = commands  # for the admin check shared with the admin commands

    async def imagine_button(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        client: AsyncWebClient,
        respond: AsyncRespond,
    ) -> None:
        """Any /imagine button: ack, then dispatch on the action its id names."""
        await ack()
        try:
            button = parse_action(action)
        except InvalidCustomId:
            await _tell(respond, texts.refused_bad_button())
            return
        try:
            if button.action is Action.CANCEL:
                await self.cancel(button, body, client, respond)
            elif button.action is Action.INFO:
                await self.parameters(button, respond)
            else:
                await self.new_job(button, body, client, respond)
        except errors.JobNotFound:
            await _tell(respond, texts.refused_job_not_found(button.job_id))
        except Exception:
            log.exception("button failed", extra={"action": "slack_button_error", "job_id": button.job_id})
            await _tell(respond, texts.failed_internal())

    async def new_job(
        self, button: ButtonId, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Reroll (same prompt, new seed), variations of image i, or pick image i: a job for the clicker."""
        user = body.get("user") or {}
        kind = _KIND_OF_ACTION[button.action]
        request = EnqueueRequest(
            platform=PLATFORM,
            user_id=user["id"],
            user_name=user.get("username") or user.get("name") or "",
            guild_id=_team_id(body),
            channel_id=_channel_id(body),
            prompt="",
            kind=kind,
            parent_job_id=button.job_id,
            image_index=button.image_index,
            refs=MessageRefs(
                response_url=body.get("response_url"),
                extra=workspace_refs((body.get("enterprise") or {}).get("id")) | _reply_to(button, body),
            ),
        )
        try:
            enqueued = await self.jobs.enqueue(request, client=client)
        except SlackRefusal as exc:
            await _tell(respond, exc.text)
            return
        if kind is Kind.PICK:
            return  # born done: the poster posts the image in a moment, nothing to wait for
        await _tell(respond, texts.queued(enqueued.job, enqueued.position, enqueued.eta))
        try:
            await self.jobs.post_placeholder(enqueued, client=client)
        except SlackRefusal as exc:
            await _tell(respond, exc.text)

    async def cancel(
        self, button: ButtonId, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """Cancel a queued or drawing job: the requester, or an admin."""
        user_id = (body.get("user") or {})["id"]
        job = await self.queue.get_job(button.job_id)
        is_admin = False
        if job.user_id != user_id:
            try:
                is_admin = await self.commands.is_admin(client, team_id=_team_id(body), user_id=user_id)
            except SlackApiError:
                await _tell(respond, texts.refused_admin_check_failed())
                return
        try:
            job = await self.queue.cancel(button.job_id, user_id, is_admin=is_admin)
        except errors.NotAllowed:
            await _tell(respond, texts.refused_not_yours(button.job_id))
            return
        await _tell(respond, texts.cancel_answer(job))

    async def parameters(self, button: ButtonId, respond: AsyncRespond) -> None:
        """The job's prompt and options, enough to reproduce it."""
        job = await self.queue.get_job(button.job_id)
        await _tell(respond, texts.parameters(job, await self.queue.image_scores(button.job_id)))


async def _tell(respond: AsyncRespond, text: str) -> None:
    """An ephemeral answer to the clicker that leaves the clicked message as it is."""
    await respond(text=text, response_type="ephemeral", replace_original=False)


def _reply_to(button: ButtonId, body: dict[str, Any]) -> dict[str, str]:
    """An upscale is posted in the thread of the message whose ⬆ was clicked."""
    ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
    return {"reply_to_ts": str(ts)} if button.action is Action.UPSCALE and ts else {}


def _team_id(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")


def _channel_id(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
