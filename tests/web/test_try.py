"""Try a prompt: enqueued as platform `web` through the queue's own enqueue, refusals shown as they are."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from jobs.queue import Queue
from tests.web.data import WORKER, png
from tests.web.helpers import page_csrf


async def test_try_enqueues_as_web_and_shows_progress_then_pictures(admin: TestClient, queue: Queue) -> None:
    token = await page_csrf(admin, "/try")
    response = await admin.post(
        "/try", data={"csrf_token": token, "prompt": "a tiny red house", "images": "2", "seed": "5"}
    )
    assert response.status == 200
    job_id = int(response.url.path.rsplit("/", 1)[1])
    text = await response.text()
    assert f"Queued as job {job_id} (place 1 in the queue)." in text and 'data-live-url="/jobs/' in text
    job = await queue.get_job(job_id)
    assert (job.platform, job.user_id, job.options.images, job.options.seed) == ("web", "dashboard", 2, 5)

    await queue.claim(WORKER, max_images=8)
    await queue.heartbeat([job_id], WORKER, 0.5)
    data = await (await admin.get(f"/jobs/{job_id}.json")).json()
    assert data["status"] == "running" and data["progress"] == 0.5 and not data["final"]

    await queue.finish(
        job_id, WORKER, grid_png=png((1, 2, 3)), images=[(png((9, 9, 9)), bytes(512))] * 2, gpu_seconds=1.5
    )
    data = await (await admin.get(f"/jobs/{job_id}.json")).json()
    assert data["status"] == "done" and data["final"]
    assert f'src="/jobs/{job_id}/images/-1.png"' in data["sections"]["job"]
    recent = await (await admin.get("/try")).text()
    assert "a tiny red house" in recent


async def test_refusals_are_shown_and_nothing_is_queued(admin: TestClient, queue: Queue) -> None:
    token = await page_csrf(admin, "/try")
    for prompt, images, reason in (
        ("   ", "4", "your prompt is empty"),
        ("a cat", "10", "images must be from 1 to 9"),
        ("🐱🐱", "1", "no letters or digits"),
    ):
        response = await admin.post("/try", data={"csrf_token": token, "prompt": prompt, "images": images})
        assert response.status == 400
        assert reason in await response.text()
    await queue.ban("web", "dashboard")
    response = await admin.post("/try", data={"csrf_token": token, "prompt": "a cat", "images": "1"})
    assert response.status == 400 and "banned" in await response.text()
    assert (await queue.jobs_for_user("web", "dashboard")) == []
