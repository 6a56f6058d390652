"""The App Home tab: the user's recent pictures and, for admins, the workspace's usage.

Published with ``views.publish`` whenever the user opens the tab (``app_home_opened``). A grid the
poster shared is shown by its Slack file id (an image block's ``slack_file``), so no image hosting is
needed; jobs without one (failed, cancelled, still drawing) are listed as text.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import texts
from bot.slack.commands import PLATFORM, SlackCommands
from jobs.models import Job, Status, UsageFilter, utcnow
from jobs.queue import Queue

log = logging.getLogger(__name__)

HOME_JOB_COUNT = 10
HOME_USAGE_DAYS = 7
MAX_HOME_BLOCKS = 100  # Slack's limit for a Home tab view


class SlackHome:
    def __init__(self, *, queue: Queue, commands: SlackCommands) -> None:
        self.queue = queue
        self.commands = commands

    async def app_home_opened(
        self, event: dict[str, Any], context: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Publish the Home tab for the user who opened it."""
        if event.get("tab", "home") != "home":
            return
        user_id = event["user"]
        team_id = str(context.get("team_id") or "")
        await client.views_publish(
            user_id=user_id, view=await self.view(client, team_id=team_id, user_id=user_id)
        )

    async def view(self, client: AsyncWebClient, *, team_id: str, user_id: str) -> dict[str, Any]:
        jobs = await self.queue.jobs_for_user(PLATFORM, user_id, limit=HOME_JOB_COUNT * 3)
        recent = [job for job in jobs if not team_id or job.guild_id == team_id][:HOME_JOB_COUNT]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": texts.home_title()}},
            _mrkdwn(texts.home_intro()),
            {"type": "divider"},
            _mrkdwn(f"*{texts.home_recent_header(len(recent))}*"),
        ]
        for job in recent:
            blocks.extend(_job_blocks(job))
        try:
            is_admin = await self.commands.is_admin(client, team_id=team_id, user_id=user_id)
        except SlackApiError:
            is_admin = False  # the tab still shows the user's own pictures
        if is_admin:
            filters = UsageFilter(
                platform=PLATFORM, guild_id=team_id, since=utcnow() - timedelta(days=HOME_USAGE_DAYS)
            )
            total = await self.queue.usage(by="total", filters=filters)
            by_user = await self.queue.usage(by="user", filters=filters)
            blocks += [
                {"type": "divider"},
                _mrkdwn(f"*{texts.home_usage_header(HOME_USAGE_DAYS)}*"),
                _mrkdwn(texts.usage_report(total, by_user, days=HOME_USAGE_DAYS, user_id=None)),
            ]
        return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}


def _job_blocks(job: Job) -> list[dict[str, Any]]:
    blocks = [_mrkdwn(texts.history_line(job))]
    file_id = job.refs.extra.get("grid_file_id")
    if job.status is Status.DONE and job.refs.extra.get("grid_shared") and file_id:
        blocks.append(
            {"type": "image", "slack_file": {"id": str(file_id)}, "alt_text": job.prompt[:2000] or "grid"}
        )
    return blocks


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
