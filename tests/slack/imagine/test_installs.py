"""Installs by OAuth ("Add to Slack"): two workspaces install through Bolt's OAuth flow against the fake
Slack (the real `run_slack` HTTP server; the test client follows the redirects like a browser and keeps
the state cookie), each `/imagine` is answered and its grid posted with that workspace's own token, an
uninstall stops deliveries to that workspace only, and a forged or replayed `state` is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.slack import texts
from bot.slack.app import SlackFrontend, run_slack
from bot.slack.poster import SlackPoster, make_poster
from generator.delivery import Deliverer
from generator.model.grid import make_grid, png_bytes
from jobs.models import IMAGE_TOKEN_COUNT, Delivery, Job
from jobs.queue import Queue
from jobs.settings import Settings, load_settings
from jobs.slack_installs import SlackInstallations
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import SlackEventsDriver
from tests.slack.imagine.harness import (
    CHANNEL,
    TEST_ACK_DEADLINE_SECONDS,
    USER,
    WORKER,
    drain_listeners,
    picture,
)

TEAMS = {"T1": "Team One", "T2": "Team Two"}


@pytest.fixture
def oauth_settings(fake_slack: FakeSlack, db_url: str, signing_secret: str) -> Settings:
    return load_settings(
        env_file=None,
        database_url=db_url,
        slack_client_id=fake_slack.client_id,
        slack_client_secret=fake_slack.client_secret,
        slack_signing_secret=signing_secret,
        slack_api_url=fake_slack.api_url,
    )


@pytest.fixture
async def frontend(
    oauth_settings: Settings, fake_slack: FakeSlack, queue: Queue
) -> AsyncIterator[SlackFrontend]:
    await queue.worker_heartbeat(WORKER, device="cpu", model="m", batch_images=8)
    async with run_slack(
        oauth_settings,
        queue,
        http_host="127.0.0.1",
        http_port=0,
        ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS,
    ) as running:
        assert running.install_url is not None and running.url is not None
        # the app's "Redirect URLs" setting on Slack's side
        fake_slack.oauth_redirect_url = running.install_url.replace("/slack/install", "/slack/oauth_redirect")
        yield running


@pytest.fixture
async def browser(frontend: SlackFrontend) -> AsyncIterator[aiohttp.ClientSession]:
    """Follows redirects and keeps cookies, as a browser does (the state cookie is Secure: a browser
    treats http://127.0.0.1 as a secure origin, so this one does too)."""
    assert frontend.install_url is not None
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=frontend.install_url.rsplit("/slack", 1)[0])
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        yield session


@pytest.fixture
async def driver(fake_slack: FakeSlack, frontend: SlackFrontend, signing_secret: str) -> AsyncIterator[Any]:
    assert frontend.url is not None
    events = SlackEventsDriver(fake_slack, events_url=frontend.url, signing_secret=signing_secret)
    yield events
    await events.aclose()


@pytest.fixture
async def poster(oauth_settings: Settings) -> AsyncIterator[SlackPoster]:
    made = make_poster(oauth_settings)  # what the generator builds: tokens from the database
    assert made is not None
    yield made
    await made.aclose()


async def install(
    browser: aiohttp.ClientSession, frontend: SlackFrontend, fake: FakeSlack, team_id: str
) -> tuple[int, str]:
    """An admin of `team_id` clicks "Add to Slack" and then "Allow"."""
    fake.approve_installs_as(team_id, TEAMS[team_id])
    assert frontend.install_url is not None
    async with browser.get(frontend.install_url) as response:
        return response.status, await response.text()


async def placeholders_recorded(queue: Queue, count: int) -> None:
    """Wait until `count` jobs have their placeholder recorded (the frontend finishes after its ack; a
    claim skips a row it is still writing)."""

    async with asyncio.timeout(10):
        while True:
            jobs = await queue.jobs_for_user("slack", USER, limit=100)
            if sum(1 for job in jobs if job.refs.placeholder_message_id) >= count:
                return
            await asyncio.sleep(0.02)


async def render_all(queue: Queue) -> list[Job]:
    """Claim and finish every queued job with real PNGs, as the render loop would (no model)."""
    done = []
    while claimed := await queue.claim(WORKER, max_images=64):
        for job in claimed:
            done.append(await _finish(queue, job))
    return done


async def _finish(queue: Queue, job: Job) -> Job:
    images = [picture(i) for i in range(job.images)]
    rendered = [(png_bytes(image), bytes(2 * IMAGE_TOKEN_COUNT)) for image in images]
    return await queue.finish(
        job.id, WORKER, grid_png=png_bytes(make_grid(images)), images=rendered, gpu_seconds=0.1
    )


def tokens_of(fake: FakeSlack, method: str) -> list[str | None]:
    return [call.token for call in fake.calls if call.method == method and call.status == 200]


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_two_workspaces_install_post_with_their_own_tokens_and_an_uninstall_stops_one(
    fake_slack: FakeSlack,
    frontend: SlackFrontend,
    browser: aiohttp.ClientSession,
    driver: SlackEventsDriver,
    poster: SlackPoster,
    queue: Queue,
) -> None:
    for team_id in TEAMS:
        status, _ = await install(browser, frontend, fake_slack, team_id)
        assert status == 200
    t1, t2 = fake_slack.token_of("T1"), fake_slack.token_of("T2")
    assert t1 != t2
    deliver = Deliverer(queue=queue, posters={"slack": poster})

    # each workspace's /imagine: answered, and its placeholder posted with that workspace's token
    for team_id in TEAMS:
        answer = await driver.send_slash_command(
            "/imagine", f"a boat in {team_id}", channel_id=CHANNEL, team_id=team_id
        )
        assert answer.status == 200 and "position" in answer.text, answer.text
    await fake_slack.wait_until(
        lambda: len(tokens_of(fake_slack, "chat.postMessage")) == 2, what="both placeholders"
    )
    assert sorted(tokens_of(fake_slack, "chat.postMessage")) == sorted([t1, t2])
    await placeholders_recorded(queue, 2)

    first = {job.guild_id: job for job in await render_all(queue)}
    assert set(first) == set(TEAMS)
    assert await deliver.deliver_due() == 2
    for team_id, token in (("T1", t1), ("T2", t2)):
        job = await queue.get_job(first[team_id].id)
        assert job.delivery is Delivery.DELIVERED, job.delivery_error
        shared = [
            c for c in fake_slack.calls if c.method == "files.completeUploadExternal" and c.token == token
        ]
        assert len(shared) == 1  # the grid of that workspace's job, with its own token

    # a second round: both queued; then T1 removes the app before they are delivered
    for team_id in TEAMS:
        await driver.send_slash_command("/imagine", "a second boat", channel_id=CHANNEL, team_id=team_id)
    await placeholders_recorded(queue, 4)
    second = {job.guild_id: job for job in await render_all(queue)}
    fake_slack.uninstall("T1")
    assert (await driver.send_event({"type": "app_uninstalled"}, team_id="T1")).status == 200
    await drain_listeners()  # Bolt's own listener deletes the tokens after the ack
    calls_before = len(fake_slack.calls)
    assert await deliver.deliver_due() == 2
    gone, kept = await queue.get_job(second["T1"].id), await queue.get_job(second["T2"].id)
    assert gone.delivery is Delivery.UNDELIVERABLE and gone.delivery_error == texts.workspace_uninstalled(
        "T1"
    )
    assert kept.delivery is Delivery.DELIVERED
    assert not [call for call in fake_slack.calls[calls_before:] if call.token == t1]  # none even tried
    # and T1's commands are no longer taken at all; T2's still are
    jobs_before = len(await queue.jobs_for_user("slack", USER))
    refused = await driver.send_slash_command("/imagine", "a third boat", channel_id=CHANNEL, team_id="T1")
    assert "position" not in refused.text
    accepted = await driver.send_slash_command("/imagine", "a third boat", channel_id=CHANNEL, team_id="T2")
    assert "position" in accepted.text
    assert len(await queue.jobs_for_user("slack", USER)) == jobs_before + 1


async def test_a_forged_or_replayed_state_is_refused(
    fake_slack: FakeSlack, frontend: SlackFrontend, browser: aiohttp.ClientSession
) -> None:
    status, _ = await install(browser, frontend, fake_slack, "T1")
    assert status == 200 and list(fake_slack.workspaces) == ["T1"]
    [redirect] = fake_slack.oauth_redirects
    state = redirect.rsplit("state=", 1)[1]

    # replayed: the same redirect again, even with a cookie that matches its state (the row is consumed)
    fake_slack.approve_installs_as("T2", TEAMS["T2"])
    browser.cookie_jar.update_cookies({"slack-app-oauth-state": state})
    async with browser.get(redirect, allow_redirects=False) as response:
        assert response.status == 400
    # forged: a state the app never issued, with a cookie to match
    forged = redirect.replace(state, "forged-state")
    browser.cookie_jar.update_cookies({"slack-app-oauth-state": "forged-state"})
    async with browser.get(forged, allow_redirects=False) as response:
        assert response.status == 400
    assert list(fake_slack.workspaces) == ["T1"]  # no code was exchanged for either
    assert [c.method for c in fake_slack.calls].count("oauth.v2.access") == 1


async def test_revoked_tokens_are_forgotten(
    fake_slack: FakeSlack,
    frontend: SlackFrontend,
    browser: aiohttp.ClientSession,
    driver: SlackEventsDriver,
    queue: Queue,
) -> None:
    for team_id in TEAMS:
        assert (await install(browser, frontend, fake_slack, team_id))[0] == 200
    installations = SlackInstallations.of_queue(queue, client_id=fake_slack.client_id)
    assert await installations.bot_token(team_id="T1", enterprise_id=None) == fake_slack.token_of("T1")
    fake_slack.uninstall("T1")
    revoked = {"type": "tokens_revoked", "tokens": {"bot": [fake_slack.workspaces["T1"].bot_user_id]}}
    assert (await driver.send_event(revoked, team_id="T1")).status == 200
    await drain_listeners()
    assert await installations.bot_token(team_id="T1", enterprise_id=None) is None
    assert await installations.bot_token(team_id="T2", enterprise_id=None) == fake_slack.token_of("T2")
