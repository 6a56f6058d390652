"""Every page, signed in, on a real database: history, a job, live, moderation, try, metrics."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.discord.install import install_url
from bot.web.app import create_app
from bot.web.config import DashboardConfig
from jobs.models import EnqueueRequest, Job, Status
from jobs.queue import Queue
from jobs.settings import Settings
from tests.web.data import WORKER
from tests.web.helpers import page_csrf, scrape, sign_in, value

PAGES = (
    "/",
    "/history",
    "/live",
    "/moderation",
    "/try",
    "/jobs/1",
    "/live.json",
    "/jobs/1.json",
    "/metrics",
    "/usage.csv",
    "/jobs/1/images/-1.png",
)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_needs_sign_in(
    client: TestClient, queue: Queue, history: dict[str, Job], path: str
) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status in (302, 401), path
    if response.status == 302:
        assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_answers_when_signed_in(
    admin: TestClient, queue: Queue, history: dict[str, Job], path: str
) -> None:
    response = await admin.get(path)
    assert response.status == 200, await response.text()
    assert await response.read()  # the whole body, streamed ones (CSV) included


async def test_history_search(admin: TestClient, queue: Queue, history: dict[str, Job]) -> None:
    text = await (await admin.get("/history", params={"q": "FOX"})).text()
    assert "a red fox in the snow" in text and "castle on a hill" not in text
    text = await (await admin.get("/history", params={"user": "carol"})).text()
    assert "paper boat" in text and "glass" in text and "fox" not in text
    text = await (await admin.get("/history", params={"status": "failed"})).text()
    assert "storm" in text and "castle on a hill" not in text
    today = datetime.now(UTC).date().isoformat()
    text = await (await admin.get("/history", params={"since": today, "until": today})).text()
    assert "oak tree" in text and "castle on a hill" not in text
    # LIKE wildcards in the search are literal
    assert "No job matches" in await (await admin.get("/history", params={"q": "%"})).text()


async def test_job_page_shows_everything(admin: TestClient, queue: Queue, history: dict[str, Job]) -> None:
    boat = history["boat"]
    text = await (await admin.get(f"/jobs/{boat.id}")).text()
    for expected in ("a paper boat on a lake", "slack", "T1", "C9", ">3<", "1.0 s", "3.0 s", "delivery"):
        assert expected.lower() in text.lower(), expected
    assert len(re.findall(rf'src="/jobs/{boat.id}/images/\d\.png"', text)) == 4
    assert re.findall(r"CLIP (0\.\d{3})", text) == [
        "0.310",
        "0.290",
        "0.270",
        "0.250",
    ]  # each picture's score
    grid = await admin.get(f"/jobs/{boat.id}/images/-1.png")
    assert grid.headers["Content-Type"] == "image/png" and (await grid.read()).startswith(b"\x89PNG")
    failed = await (await admin.get(f"/jobs/{history['failed'].id}")).text()
    assert "the generator ran out of memory" in failed and "CUDA out of memory (test)" in failed
    assert (await admin.get("/jobs/9999")).status == 404


async def test_delete_images_keeps_the_usage_row(
    admin: TestClient, queue: Queue, history: dict[str, Job]
) -> None:
    fox = history["fox"]
    token = await page_csrf(admin, f"/jobs/{fox.id}")
    response = await admin.post(f"/jobs/{fox.id}/delete-images", data={"csrf_token": token})
    assert response.status == 200
    text = await response.text()
    assert "Deleted 3 stored pictures" in text and "usage record is kept" in text
    assert await queue.images(fox.id) == []
    assert (await queue.get_job(fox.id)).status is Status.DONE
    assert (await admin.get(f"/jobs/{fox.id}/images/0.png")).status == 404


async def test_delete_images_needs_csrf(admin: TestClient, queue: Queue, history: dict[str, Job]) -> None:
    response = await admin.post(f"/jobs/{history['fox'].id}/delete-images", data={})
    assert response.status == 403
    assert len(await queue.images(history["fox"].id)) == 3


async def test_live_shows_queue_running_and_workers(admin: TestClient, queue: Queue) -> None:
    now = datetime.now(UTC)
    await queue.worker_heartbeat(
        WORKER, device="cuda:0", model="dalle-mini/dalle-mini", batch_images=8, now=now - timedelta(minutes=2)
    )
    await queue.enqueue(
        EnqueueRequest(platform="discord", user_id="u1", user_name="Dora", guild_id="g9", prompt="first"),
        now=now,
    )
    running = await queue.claim(WORKER, max_images=9, now=now)
    await queue.heartbeat([running[0].id], WORKER, 0.4, now=now)
    for prompt in ("second", "third"):
        await queue.enqueue(
            EnqueueRequest(platform="discord", user_id="u1", user_name="Dora", guild_id="g9", prompt=prompt),
            now=now,
        )
    await queue.enqueue(
        EnqueueRequest(platform="slack", user_id="u2", user_name="Eve", guild_id="T7", prompt="x"), now=now
    )
    await queue.worker_heartbeat(
        WORKER, device="cuda:0", model="dalle-mini/dalle-mini", batch_images=8, now=now
    )
    text = await (await admin.get("/live")).text()
    assert "Dora" in text and "g9" in text and "T7" in text and "cuda:0" in text and "first" in text
    data = await (await admin.get("/live.json")).json()
    assert data["queued_jobs"] == 3 and data["running_jobs"] == 1 and data["workers_alive"] == 1
    assert set(data["sections"]) == {"summary", "by-user", "by-guild", "running", "workers"}
    assert "Dora" in data["sections"]["by-user"] and 'value="0.4"' in data["sections"]["running"]
    assert "1 job · 4 images" in data["sections"]["workers"]  # the batch the worker is drawing


async def test_metrics(admin: TestClient, queue: Queue, history: dict[str, Job]) -> None:
    await queue.enqueue(EnqueueRequest(platform="cli", user_id="z", prompt="waiting"))
    samples = await scrape(admin)
    assert value(samples, "imagine_queue_depth_jobs") == 1
    assert value(samples, "imagine_jobs_total", platform="discord", kind="imagine", outcome="done") == 4
    assert value(samples, "imagine_jobs_total", platform="discord", kind="imagine", outcome="failed") == 1
    assert value(samples, "imagine_render_seconds_bucket", le="+Inf") == 6
    assert value(samples, "imagine_render_seconds_count") == 6
    assert value(samples, "imagine_render_seconds_bucket", le="5.0") == 4  # renders of 5, 6, 3, 8, 4, 5 s
    assert value(samples, "imagine_render_seconds_sum") == 31
    assert value(samples, "imagine_images_rendered_total", platform="slack") == 6  # 4 + 2


async def test_metrics_with_bearer_password_but_not_without(client: TestClient, queue: Queue) -> None:
    from tests.web.helpers import PASSWORD

    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {PASSWORD}"})
    assert response.status == 200 and "imagine_queue_depth_jobs 0.0" in await response.text()
    # a bearer token never allows a POST (no CSRF token without a session)
    response = await client.post("/moderation/ban", headers={"Authorization": f"Bearer {PASSWORD}"}, data={})
    assert response.status == 401


async def test_healthz_checks_the_database(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json()) == {"status": "ok"}


async def test_live_shows_the_install_links_when_installs_are_configured(
    settings: Settings, queue: Queue, dashboard_config: DashboardConfig
) -> None:
    configured = settings.model_copy(
        update={
            "discord_application_id": 123456789012345678,
            "slack_client_id": "1111.2222",
            "slack_client_secret": SecretStr("s"),
            "slack_redirect_uri": "https://bot.example.com/slack/oauth_redirect",
        }
    )
    app = create_app(settings=configured, queue=queue, config=dashboard_config)
    async with TestClient(TestServer(app)) as client:
        assert await sign_in(client) == 302
        text = await (await client.get("/live")).text()
    assert install_url(123456789012345678).replace("&", "&amp;") in text and "Add to Discord" in text
    assert 'href="https://bot.example.com/slack/install"' in text and "Add to Slack" in text


async def test_live_has_no_install_link_without_the_application_id(admin: TestClient) -> None:
    assert "Add to Discord" not in await (await admin.get("/live")).text()
