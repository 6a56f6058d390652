"""Try a prompt: enqueue a job as the dashboard admin (platform `web`) and watch it on its job page — the
way to see the product draw with no chat platform configured."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web import forms, texts
from bot.web.history import ADMIN_ID
from bot.web.keys import queue_of
from bot.web.render import render
from jobs.errors import Refused
from jobs.models import EnqueueRequest, JobSearch, Platform
from jobs.options import JobOptions

routes = web.RouteTableDef()

ADMIN_NAME = "Dashboard admin"
OPTION_FIELDS = JobOptions.NAMES


async def _page(
    request: web.Request, *, values: dict[str, str], error: str = "", status: int = 200
) -> web.Response:
    recent, _total = await queue_of(request).search_jobs(JobSearch(platform=Platform.WEB.value, limit=10))
    return render(
        request,
        "try.html",
        status=status,
        values=values,
        error=error,
        recent=recent,
        models=queue_of(request).limits.models,
    )


@routes.get("/try")
async def try_page(request: web.Request) -> web.Response:
    values = dict.fromkeys(("prompt", *OPTION_FIELDS), "")
    return await _page(request, values={**values, "images": "4"})


@routes.post("/try")
async def try_prompt(request: web.Request) -> web.Response:
    form = await request.post()
    values = {name: forms.text(form, name, limit=2000) for name in ("prompt", *OPTION_FIELDS)}
    # Empty option fields mean "the default": the queue's own parser fills them in and checks the rest.
    options: dict[str, Any] = {name: values[name] for name in OPTION_FIELDS if values[name]}
    request_ = EnqueueRequest(
        platform=Platform.WEB.value,
        user_id=ADMIN_ID,
        user_name=ADMIN_NAME,
        prompt=str(form.get("prompt", "")),
        options=options,
    )
    try:
        enqueued = await queue_of(request).enqueue(request_)
    except Refused as exc:
        return await _page(request, values=values, error=exc.reason, status=400)
    raise forms.back(
        request,
        "ok",
        texts.queued(enqueued.job.id, enqueued.position),
        to=f"/jobs/{enqueued.job.id}",
    )
