"""Usage: jobs, images, GPU-seconds, failures and cancellations per day as charts; top users; mean/p95
wait and render times; CSV of exactly the jobs counted. Filters: platform, guild/workspace, channel, user,
model and period (UTC days). All figures come from `Queue.usage`, as the chat /usage's do."""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.web import forms
from bot.web.chart import Series, bar_chart, line_chart
from bot.web.keys import NOW, queue_of
from bot.web.render import render
from jobs.models import Job, Platform, UsageFilter
from jobs.reports import UsageRow

routes = web.RouteTableDef()

DEFAULT_DAYS = 30
MAX_CHART_DAYS = 366  # longer periods are charted by the days that have jobs only
TOP_USERS = 10
FILTER_FIELDS = ("platform", "guild", "channel", "user", "model", "since", "until")
CSV_COLUMNS = (
    "job_id", "created_at", "started_at", "finished_at", "platform", "guild_id", "channel_id", "user_id",
    "user_name", "kind", "status", "images", "model", "seed", "wait_s", "render_s", "gpu_seconds", "error",
    "prompt",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Selection:
    """The filters as the page shows them and as `Queue.usage` takes them."""

    form: dict[str, str]
    first_day: date
    last_day: date
    filters: UsageFilter

    @property
    def query_string(self) -> str:
        return urlencode({k: v for k, v in self.form.items() if v})


def selection_from(query: Any, *, today: date) -> Selection:
    first = forms.day(query, "since")
    last = forms.day(query, "until")
    if last is None:
        last = today if first is None else max(first, today)
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if last < first:
        first, last = last, first
    platform = forms.text(query, "platform")
    values = {name: forms.text(query, name) for name in ("guild", "channel", "user", "model")}
    form = {
        "platform": platform if platform in {p.value for p in Platform} else "",
        **values,
        "since": first.isoformat(),
        "until": last.isoformat(),
    }
    return Selection(
        form=form,
        first_day=first,
        last_day=last,
        filters=UsageFilter(
            platform=form["platform"] or None,
            guild_id=values["guild"] or None,
            channel_id=values["channel"] or None,
            user_id=values["user"] or None,
            model=values["model"] or None,
            since=forms.start_of(first),
            until=forms.end_of(last),
        ),
    )


def _days(first: date, last: date, daily: list[UsageRow]) -> tuple[list[str], list[UsageRow | None]]:
    """Every day of the period (empty days included, so gaps show), or only days with jobs if very long."""
    by_day = {row.key: row for row in daily}
    if (last - first).days + 1 > MAX_CHART_DAYS:
        return [row.key for row in daily], list(daily)
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    return days, [by_day.get(day) for day in days]


def charts(selection: Selection, daily: list[UsageRow]) -> dict[str, str]:
    days, rows = _days(selection.first_day, selection.last_day, daily)
    labels = [day[5:] for day in days]  # MM-DD: the year is in the filter

    def values(field: str) -> list[float]:
        return [float(getattr(row, field) or 0) if row else 0.0 for row in rows]

    return {
        "volume": bar_chart(
            title="Jobs and images per day",
            labels=labels,
            series=[Series("jobs", values("jobs")), Series("images", values("images"))],
        ),
        "gpu": bar_chart(
            title="GPU-seconds per day", labels=labels, series=[Series("GPU-seconds", values("gpu_seconds"))]
        ),
        "problems": bar_chart(
            title="Failures and cancellations per day",
            labels=labels,
            series=[Series("failures", values("failures")), Series("cancellations", values("cancellations"))],
        ),
        "latency": line_chart(
            title="p95 wait and render time per day (seconds)",
            labels=labels,
            series=[Series("p95 wait", values("p95_wait_s")), Series("p95 render", values("p95_render_s"))],
        ),
    }


@routes.get("/")
async def usage_page(request: web.Request) -> web.Response:
    queue = queue_of(request)
    selection = selection_from(request.query, today=request.app[NOW]().date())
    totals = await queue.usage(by="total", filters=selection.filters)
    daily = await queue.usage(by="day", filters=selection.filters)
    users = await queue.usage(by="user", filters=selection.filters)
    top = sorted(users, key=lambda row: (-row.images, -row.jobs, row.key))[:TOP_USERS]
    return render(
        request,
        "usage.html",
        selection=selection,
        query=selection.form,
        total=totals[0] if totals else None,
        charts=charts(selection, daily),
        top_users=top,
        platforms=[p.value for p in Platform],
        csv_url=f"/usage.csv?{selection.query_string}",
        presets=[(days, _preset(selection, days, request.app[NOW]().date())) for days in (7, 30, 90)],
    )


def _preset(selection: Selection, days: int, today: date) -> str:
    form = {
        **selection.form,
        "since": (today - timedelta(days=days - 1)).isoformat(),
        "until": today.isoformat(),
    }
    return "/?" + urlencode({k: v for k, v in form.items() if v})


def _cell(value: object) -> str:
    """CSV cell text; a leading = + - @ is defused so a spreadsheet never runs a prompt as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(job: Job) -> list[str]:
    wait = job.wait_time.total_seconds() if job.wait_time is not None else None
    render_s = job.render_time.total_seconds() if job.render_time is not None else None
    values: list[object] = [
        job.id, job.created_at, job.started_at, job.finished_at, job.platform, job.guild_id, job.channel_id,
        job.user_id, job.user_name, job.kind.value, job.status.value, job.images, job.options.model,
        job.options.seed, wait, render_s, job.gpu_seconds, job.error, job.prompt,
    ]  # fmt: skip
    return [_cell(value) for value in values]


@routes.get("/usage.csv")
async def usage_csv(request: web.Request) -> web.StreamResponse:
    """One row per job the page counts (same filters, same query), streamed."""
    selection = selection_from(request.query, today=request.app[NOW]().date())
    name = f"imagine-usage-{selection.first_day.isoformat()}-to-{selection.last_day.isoformat()}.csv"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    # aclosing: if the download is abandoned midway, the database cursor is closed now, not at GC.
    async with contextlib.aclosing(queue_of(request).usage_jobs(selection.filters)) as found:
        async for job in found:
            writer.writerow(csv_row(job))
            if buffer.tell() > 64 * 1024:
                await response.write(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
    await response.write(buffer.getvalue().encode("utf-8"))
    await response.write_eof()
    return response
