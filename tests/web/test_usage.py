"""The usage page and its CSV agree with `Queue.usage` for every filter; charts carry the daily numbers."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from jobs.models import Job, UsageFilter
from jobs.queue import Queue
from tests.web.data import day_start, done_job

TODAY = datetime.now(UTC).date()


def period(days: int) -> dict[str, str]:
    return {"since": (TODAY - timedelta(days=days - 1)).isoformat(), "until": TODAY.isoformat()}


FILTERS = [
    {},
    {"platform": "slack"},
    {"platform": "discord", "guild": "g1"},
    {"channel": "C9"},
    {"user": "alice"},
    {"user": "bob", "platform": "discord"},
    {"model": "nope"},
    period(3),
    {"platform": "discord", **period(3)},
]


def expected_filter(params: dict[str, str]) -> UsageFilter:
    """What the page must ask `Queue.usage` for, written out independently of the page's parser."""
    since = datetime.fromisoformat(params.get("since", (TODAY - timedelta(days=29)).isoformat())).replace(
        tzinfo=UTC
    )
    until = datetime.fromisoformat(params.get("until", TODAY.isoformat())).replace(tzinfo=UTC) + timedelta(
        days=1
    )
    return UsageFilter(
        platform=params.get("platform"),
        guild_id=params.get("guild"),
        channel_id=params.get("channel"),
        user_id=params.get("user"),
        model=params.get("model"),
        since=since,
        until=until,
    )


def totals_on_page(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)">([^<]*)<', html))


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("params", FILTERS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "all")
async def test_page_and_csv_agree_with_usage_queries(
    admin: TestClient, queue: Queue, history: dict[str, Job], params: dict[str, str]
) -> None:
    [expected] = await queue.usage(by="total", filters=expected_filter(params)) or [None]

    page = await admin.get("/", params=params)
    assert page.status == 200
    totals = totals_on_page(await page.text())
    jobs = expected.jobs if expected else 0
    assert totals["jobs"] == str(jobs)
    assert totals["images"] == str(expected.images if expected else 0)
    assert totals["failures"] == str(expected.failures if expected else 0)
    assert totals["cancellations"] == str(expected.cancellations if expected else 0)

    response = await admin.get("/usage.csv", params=params)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(await response.text())
    assert len(rows) == jobs
    if expected:
        assert sum(int(r["images"]) for r in rows) == expected.images
        assert sum(float(r["gpu_seconds"] or 0) for r in rows) == pytest.approx(expected.gpu_seconds)
        assert sum(r["status"] == "failed" for r in rows) == expected.failures
        assert sum(r["status"] == "cancelled" for r in rows) == expected.cancellations
    for key, column in (
        ("platform", "platform"),
        ("guild", "guild_id"),
        ("channel", "channel_id"),
        ("user", "user_id"),
    ):
        if key in params:
            assert {r[column] for r in rows} <= {params[key]}


async def test_csv_rows_are_the_filtered_jobs(
    admin: TestClient, queue: Queue, history: dict[str, Job]
) -> None:
    rows = read_csv(await (await admin.get("/usage.csv", params={"user": "carol"})).text())
    assert [int(r["job_id"]) for r in rows] == [history["boat"].id, history["city"].id]
    boat = rows[0]
    assert (
        boat["prompt"] == "a paper boat on a lake" and boat["platform"] == "slack" and boat["images"] == "4"
    )
    assert (
        float(boat["wait_s"]) == 1.0 and float(boat["render_s"]) == 3.0 and float(boat["gpu_seconds"]) == 3.0
    )


async def test_csv_defuses_spreadsheet_formulas(admin: TestClient, queue: Queue) -> None:
    await done_job(
        queue, '=HYPERLINK("http://evil.example","click")', "mallory", at=day_start(0) + timedelta(minutes=1)
    )
    rows = read_csv(await (await admin.get("/usage.csv")).text())
    assert rows[0]["prompt"].startswith("'=HYPERLINK")


async def test_chart_shows_each_day(admin: TestClient, queue: Queue, history: dict[str, Job]) -> None:
    html = await (await admin.get("/", params=period(7))).text()
    volume = re.search(r'id="chart-volume">(.*?)</svg>', html, re.S)
    assert volume is not None
    jobs_per_day = re.findall(r'class="bar s0"[^>]*data-value="([\d.]+)"', volume.group(1))
    expected = [1, 1, 0, 1, 2, 2, 1]  # 6 days ago … today (see seed_history)
    assert [int(float(v)) for v in jobs_per_day] == expected


async def test_top_users(admin: TestClient, queue: Queue, history: dict[str, Job]) -> None:
    html = await (await admin.get("/")).text()
    top = html[html.index('id="top-users"') :]
    # carol asked for 6 images, alice 6 (2 + 2 + 2 cancelled), bob 6: ties broken by jobs then key
    assert top.index("Alice") < top.index("Bob") < top.index("Carol")


async def test_bad_filter_values_are_ignored(
    admin: TestClient, queue: Queue, history: dict[str, Job]
) -> None:
    response = await admin.get(
        "/", params={"since": "yesterday", "platform": "myspace", "until": "2026-13-45"}
    )
    assert response.status == 200
    assert totals_on_page(await response.text())["jobs"] == "8"
