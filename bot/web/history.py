"""History: search every job, open one (images, options, timings, attempts, errors, delivery), delete its
pictures, cancel it. A job page also shows live progress for a job still queued or running."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.web import forms, texts
from bot.web.auth import safe_next_path
from bot.web.keys import queue_of
from bot.web.render import render, render_fragment
from jobs.errors import JobNotFound
from jobs.models import GRID_INDEX, Job, JobSearch, Platform, Status

routes = web.RouteTableDef()

PAGE_SIZE = 50
ADMIN_ID = "dashboard"  # who the queue records as acting when an admin acts from the dashboard


def search_from(query: Any, *, page: int) -> JobSearch:
    status = forms.text(query, "status")
    return JobSearch(
        text=forms.text(query, "q"),
        user=forms.text(query, "user"),
        status=status if status in {s.value for s in Status} else "",
        platform=forms.text(query, "platform"),
        guild_id=forms.text(query, "guild"),
        since=forms.start_of(forms.day(query, "since")),
        until=forms.end_of(forms.day(query, "until")),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )


@routes.get("/history")
async def history_page(request: web.Request) -> web.Response:
    query = request.query
    page = forms.integer(query, "page", default=1, low=1, high=100_000)
    found, total = await queue_of(request).search_jobs(search_from(query, page=page))
    kept = {k: v for k, v in query.items() if k != "page" and v}
    pages = max(1, -(-total // PAGE_SIZE))
    return render(
        request,
        "history.html",
        jobs=found,
        total=total,
        page=page,
        pages=pages,
        prev_url=f"/history?{urlencode({**kept, 'page': page - 1})}" if page > 1 else None,
        next_url=f"/history?{urlencode({**kept, 'page': page + 1})}" if page < pages else None,
        query={
            name: forms.text(query, name)
            for name in ("q", "user", "status", "platform", "guild", "since", "until")
        },
        statuses=[s.value for s in Status],
        platforms=[p.value for p in Platform],
    )


async def _job_or_404(request: web.Request) -> Job:
    try:
        return await queue_of(request).get_job(int(request.match_info["job_id"]))
    except JobNotFound:
        raise web.HTTPNotFound(text=texts.error_no_such_job(request.match_info["job_id"])) from None


def is_final(job: Job) -> bool:
    return job.status not in (Status.QUEUED, Status.RUNNING)


async def job_context(request: web.Request, job: Job) -> dict[str, Any]:
    """What the job page (and its live refresh) shows."""
    queue = queue_of(request)
    indices = await queue.image_indices(job.id)
    position = (await queue.position(job.id))[0] if job.status is Status.QUEUED else None
    scores = await queue.image_scores(job.id)
    return {
        "job": job,
        "scores": {index: f"{score:.3f}" for index, score in scores.items() if score is not None},
        "indices": [i for i in indices if i != GRID_INDEX],
        "has_grid": GRID_INDEX in indices,
        "position": position,
        "is_final": is_final(job),
    }


@routes.get(r"/jobs/{job_id:\d+}")
async def job_page(request: web.Request) -> web.Response:
    job = await _job_or_404(request)
    return render(request, "job.html", **await job_context(request, job))


@routes.get(r"/jobs/{job_id:\d+}.json")
async def job_json(request: web.Request) -> web.Response:
    """For live refresh of a job page: its status, progress and the page's body."""
    job = await _job_or_404(request)
    context = await job_context(request, job)
    return web.json_response(
        {
            "id": job.id,
            "status": job.status.value,
            "progress": job.progress,
            "final": is_final(job),
            "sections": {"job": render_fragment(request, "_job.html", **context)},
        }
    )


@routes.get(r"/jobs/{job_id:\d+}/images/{index:-?\d+}.png")
async def job_image(request: web.Request) -> web.Response:
    """A stored picture, straight from the database's bytes (index -1 is the grid)."""
    try:
        image = await queue_of(request).image(
            int(request.match_info["job_id"]), int(request.match_info["index"])
        )
    except JobNotFound:
        raise web.HTTPNotFound(text=texts.ERROR_PICTURE_NOT_STORED) from None
    # Stored pictures never change (deleting removes them), so the browser may keep them a while.
    return web.Response(
        body=image.png, content_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


@routes.post(r"/jobs/{job_id:\d+}/delete-images")
async def delete_job_images(request: web.Request) -> web.Response:
    job = await _job_or_404(request)
    deleted = await queue_of(request).delete_images(job.id)
    if not deleted:
        raise forms.back(request, "error", texts.error_no_pictures(job.id), to=f"/jobs/{job.id}")
    raise forms.back(request, "ok", texts.pictures_deleted(job.id, deleted), to=f"/jobs/{job.id}")


@routes.post(r"/jobs/{job_id:\d+}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    job = await _job_or_404(request)
    form = await request.post()
    # Back to the page the button was on (live, history, the job), never off the site.
    to = safe_next_path(forms.text(form, "back") or f"/jobs/{job.id}")
    raise forms.back(request, *await cancel_as_admin(request, job.id), to=to)


async def cancel_as_admin(request: web.Request, job_id: int) -> tuple[str, str]:
    """Cancel any job with the queue's own cancel (as the chat admin command does); (kind, message)."""
    try:
        job = await queue_of(request).cancel(job_id, ADMIN_ID, is_admin=True)
    except JobNotFound:
        return "error", texts.error_no_such_job(job_id)
    if job.status is Status.CANCELLED:
        return "ok", texts.job_cancelled(job_id)
    if job.status is Status.RUNNING and job.cancel_requested:
        return "ok", texts.job_cancel_requested(job_id)
    return "error", texts.error_nothing_to_cancel(job_id, job.status.value)
