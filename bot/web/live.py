"""Live: what is queued (by user and by guild/workspace), what is rendering, and which generators are alive.
The page refreshes its sections from `/live.json` every few seconds (static/live.js), without a reload."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.web import texts
from bot.web.keys import NOW, SETTINGS, queue_of
from bot.web.render import render, render_fragment
from jobs.models import Job, Status, WorkerInfo

routes = web.RouteTableDef()

WORKERS_SHOWN_SECONDS = 600.0  # generators silent longer than this drop off the page
SECTIONS = ("summary", "by-user", "by-guild", "running", "workers")


@dataclass(frozen=True, slots=True)
class WorkerRow:
    info: WorkerInfo
    images_per_minute: float | None  # since the worker started
    is_stale: bool  # silent for longer than a lease: probably dead
    batch_jobs: int  # the batch it is drawing now: jobs it holds…
    batch_images: int  # …and their pictures


def worker_rows(
    workers: list[WorkerInfo], running: list[Job], *, now: datetime, lease_seconds: float
) -> list[WorkerRow]:
    rows = []
    for info in workers:
        minutes = (info.last_seen_at - info.started_at).total_seconds() / 60
        rate = info.images_done / minutes if minutes > 0 else None
        stale = (now - info.last_seen_at).total_seconds() > lease_seconds
        held = [job for job in running if job.lease_owner == info.worker_id]
        rows.append(WorkerRow(info, rate, stale, len(held), sum(job.images for job in held)))
    return rows


async def live_context(request: web.Request) -> dict[str, Any]:
    queue = queue_of(request)
    now = request.app[NOW]()
    by_user = await queue.depth_by_user()
    by_guild = await queue.depth_by_guild()
    running = await queue.jobs_with_status(Status.RUNNING)
    workers = await queue.workers_seen(WORKERS_SHOWN_SECONDS, now=now)
    rows = worker_rows(workers, running, now=now, lease_seconds=queue.limits.lease_seconds)
    return {
        "now": now,
        "by_user": by_user,
        "by_guild": by_guild,
        "running": running,
        "workers": rows,
        "queued_jobs": sum(d.queued_jobs for d in by_user),
        "queued_images": sum(d.queued_images for d in by_user),
        "workers_alive": sum(1 for row in rows if not row.is_stale),
    }


def install_links(settings: Any) -> list[tuple[str, str]]:
    """The "Add to …" links an operator hands out, for the platforms configured for installs."""
    links = []
    application_id = getattr(settings, "discord_application_id", None)
    if application_id is not None:
        from bot.discord.install import install_url  # discord.py only when Discord is configured

        links.append((texts.ADD_TO_DISCORD, install_url(application_id)))
    redirect = getattr(settings, "slack_redirect_uri", None)
    if getattr(settings, "slack_oauth", False) and redirect:
        from bot.slack.oauth import install_url_beside  # slack_bolt only when Slack installs are on

        links.append((texts.ADD_TO_SLACK, install_url_beside(redirect)))
    return links


@routes.get("/live")
async def live_page(request: web.Request) -> web.Response:
    return render(
        request,
        "live.html",
        sections=SECTIONS,
        installs=install_links(request.app[SETTINGS]),
        **await live_context(request),
    )


@routes.get("/live.json")
async def live_json(request: web.Request) -> web.Response:
    context = await live_context(request)
    sections = {
        name: render_fragment(request, f"_live_{name.replace('-', '_')}.html", **context) for name in SECTIONS
    }
    return web.json_response(
        {
            "queued_jobs": context["queued_jobs"],
            "running_jobs": len(context["running"]),
            "workers_alive": context["workers_alive"],
            "sections": sections,
            "final": False,
        }
    )
