"""Moderation through the dashboard uses the queue's own rules: a ban here refuses the next enqueue."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from jobs import errors
from jobs.models import EnqueueRequest, Status
from jobs.queue import Queue
from tests.web.data import WORKER
from tests.web.helpers import page_csrf


def imagine(user: str = "mallory", prompt: str = "a lighthouse", **overrides: str) -> EnqueueRequest:
    values = {"platform": "discord", "user_id": user, "guild_id": "g1", "channel_id": "c1", "prompt": prompt}
    return EnqueueRequest(**{**values, **overrides})


async def post(client: TestClient, path: str, **data: str) -> str:
    token = await page_csrf(client, "/moderation")
    response = await client.post(path, data={"csrf_token": token, **data})
    assert response.status == 200, await response.text()
    return await response.text()


async def test_ban_refuses_the_next_enqueue_and_unban_allows_it(admin: TestClient, queue: Queue) -> None:
    await queue.enqueue(imagine())  # allowed before the ban
    page = await post(admin, "/moderation/ban", platform="discord", user_id="mallory", reason="spam")
    assert "Banned discord user mallory in all of discord." in page
    assert "spam" in page and "dashboard" in page  # the bans table: reason, who banned
    with pytest.raises(errors.Banned):
        await queue.enqueue(imagine())
    await queue.enqueue(imagine(user="alice"))  # others are not affected
    page = await post(admin, "/moderation/unban", platform="discord", user_id="mallory", guild_id="")
    assert "Unbanned discord user mallory." in page
    await queue.enqueue(imagine())


async def test_ban_in_one_guild_only(admin: TestClient, queue: Queue) -> None:
    await post(admin, "/moderation/ban", platform="discord", user_id="mallory", guild_id="g1")
    with pytest.raises(errors.Banned):
        await queue.enqueue(imagine())
    await queue.enqueue(imagine(guild_id="g2"))


async def test_ban_form_errors_are_explained(admin: TestClient, queue: Queue) -> None:
    page = await post(admin, "/moderation/ban", platform="myspace", user_id="x")
    assert "Not banned: choose a platform" in page
    page = await post(admin, "/moderation/ban", platform="discord", user_id=" ")
    assert "Not banned: enter the user id to ban." in page
    assert await queue.bans("discord") == []


async def test_guild_blocklist_caps_and_quota(admin: TestClient, queue: Queue) -> None:
    page = await post(
        admin,
        "/moderation/space",
        platform="discord",
        guild_id="g1",
        blocked_words="gore\nblood, gore",
        allowed_channels="",
        max_running_per_user="",
        max_queued_per_user="1",
        daily_quota_images="",
    )
    assert "Saved the settings of discord g1." in page
    settings = await queue.get_settings("discord", "g1")
    assert settings.blocked_words == ("gore", "blood") and settings.max_queued_per_user == 1
    assert settings.max_running_per_user is None and settings.daily_quota_images is None
    with pytest.raises(errors.BlockedWord):
        await queue.enqueue(imagine(prompt="a pool of Blood"))
    await queue.enqueue(imagine(prompt="a calm sea"))
    with pytest.raises(errors.TooManyQueued):
        await queue.enqueue(imagine(prompt="another sea"))
    edit = await (await admin.get("/moderation", params={"platform": "discord", "guild": "g1"})).text()
    assert "gore\nblood</textarea>" in edit


async def test_space_form_refuses_bad_numbers(admin: TestClient, queue: Queue) -> None:
    page = await post(
        admin, "/moderation/space", platform="discord", guild_id="g1", max_queued_per_user="many"
    )
    assert "Not saved: max queued per user must be a whole number" in page
    page = await post(admin, "/moderation/space", platform="discord", guild_id="g1", max_running_per_user="0")
    assert "Not saved: max running per user must be 1 or more" in page
    assert (await queue.get_settings("discord", "g1")).max_queued_per_user is None


async def test_cancel_any_job(admin: TestClient, queue: Queue) -> None:
    queued = (await queue.enqueue(imagine(user="alice"))).job
    page = await post(admin, "/moderation/cancel", job_id=str(queued.id))
    assert f"Job {queued.id} cancelled." in page
    assert (await queue.get_job(queued.id)).status is Status.CANCELLED

    running = (await queue.enqueue(imagine(user="bob"))).job
    await queue.claim(WORKER, max_images=9)
    page = await post(admin, "/moderation/cancel", job_id=str(running.id))
    assert "its generator will stop it" in page
    heartbeat = await queue.heartbeat([running.id], WORKER, 0.5)
    assert heartbeat.cancel_requested == {running.id}

    page = await post(admin, "/moderation/cancel", job_id="424242")
    assert "There is no job 424242." in page


async def test_cancel_from_the_job_page(admin: TestClient, queue: Queue) -> None:
    job = (await queue.enqueue(imagine(user="alice"))).job
    token = await page_csrf(admin, f"/jobs/{job.id}")
    response = await admin.post(f"/jobs/{job.id}/cancel", data={"csrf_token": token, "back": "/live"})
    assert response.status == 200 and response.url.path == "/live"
    assert (await queue.get_job(job.id)).status is Status.CANCELLED
    other = (await queue.enqueue(imagine(user="bob"))).job
    response = await admin.post(
        f"/jobs/{other.id}/cancel",
        data={"csrf_token": token, "back": "//evil.example/"},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/"  # never off the site


async def test_signed_out_cannot_reach_moderation(client: TestClient, queue: Queue) -> None:
    job = (await queue.enqueue(imagine(user="alice"))).job
    response = await client.get("/moderation", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/login")
    for path, data in (
        ("/moderation/ban", {"platform": "discord", "user_id": "alice"}),
        ("/moderation/unban", {"platform": "discord", "user_id": "alice"}),
        ("/moderation/space", {"platform": "discord", "guild_id": "g1", "blocked_words": "cat"}),
        ("/moderation/cancel", {"job_id": str(job.id)}),
        (f"/jobs/{job.id}/cancel", {}),
        ("/try", {"prompt": "sneaky"}),
    ):
        response = await client.post(path, data={**data, "csrf_token": "guess"}, allow_redirects=False)
        assert response.status == 401, path
    assert await queue.bans("discord") == []
    assert (await queue.get_settings("discord", "g1")).blocked_words == ()
    assert (await queue.get_job(job.id)).status is Status.QUEUED


async def test_moderation_posts_need_the_session_csrf_token(admin: TestClient, queue: Queue) -> None:
    response = await admin.post("/moderation/ban", data={"platform": "discord", "user_id": "alice"})
    assert response.status == 403
    response = await admin.post(
        "/moderation/ban", data={"platform": "discord", "user_id": "alice", "csrf_token": "x" * 43}
    )
    assert response.status == 403
    assert await queue.bans("discord") == []
