"""Fixtures for the /imagine Slack frontend tests: a migrated queue, the real Bolt app served against the
fake Slack (HTTP mode), and the generator's delivery loop with the real `SlackPoster`.

    async def test_x(bot: SlackBot):
        response = await bot.slack.send_slash_command("/imagine", "a cat", channel_id=CHANNEL)
        job = await bot.render_next()            # claim + finish with real PNGs (no model)
        await bot.deliver()                      # one pass of the delivery loop

Story tests that render with the real generator on a tiny checkpoint use `tiny_worker` instead of
`render_next` (tests/slack/imagine/test_stories.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack.admins import SlackAdmins
from bot.slack.app import build_app
from bot.slack.poster import SlackPoster
from jobs.queue import Limits, Queue
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import HttpStarter, web_client_for
from tests.jobs.databases import copy_sqlite
from tests.slack.imagine.harness import (
    TEST_ACK_DEADLINE_SECONDS,
    SlackBot,
    drain_listeners,
    fast_retry_handlers,
)

LIMITS = Limits(
    max_queued_per_user=50, max_running_per_user=50, daily_quota_images=0, retry_backoff_seconds=0.0
)


# `db_url`, `make_queue` and `queue` override tests/jobs/fixtures.py's (its `engine` and the session's
# `sqlite_template` and `postgres_url` are used as they are): SQLite by default, and this suite's limits.
@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite; a test opts into Postgres too with `@pytest.mark.parametrize("db_url", …, indirect=True)`."""
    if request.param == "sqlite":
        return copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "imagine.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_queue(engine: AsyncEngine) -> Callable[..., Queue]:
    def make(**changes: Any) -> Queue:
        fields = {name: getattr(LIMITS, name) for name in Limits.__slots__}
        return Queue(engine=engine, limits=Limits(**{**fields, **changes}))

    return make


@pytest.fixture
def queue(make_queue: Callable[..., Queue]) -> Queue:
    return make_queue()


@pytest.fixture
async def bot_client(fake_slack: FakeSlack, engine: AsyncEngine) -> AsyncIterator[AsyncWebClient]:
    """The app's Web API client, retrying 429s after Retry-After as in production (but only a few).

    On teardown it waits for Bolt's listeners still running after their ack (a placeholder post), so
    none outlives the fake Slack or the database it talks to."""
    yield web_client_for(fake_slack, retry_handlers=fast_retry_handlers())
    await drain_listeners()


@pytest.fixture
async def poster(fake_slack: FakeSlack) -> AsyncIterator[SlackPoster]:
    poster = SlackPoster(
        client=web_client_for(fake_slack, retry_handlers=fast_retry_handlers()),
        progress_client=web_client_for(fake_slack),
    )
    yield poster
    await poster.aclose()


@pytest.fixture
async def bot(
    fake_slack: FakeSlack,
    bot_client: AsyncWebClient,
    signing_secret: str,
    slack_http: HttpStarter,
    queue: Queue,
    poster: SlackPoster,
) -> SlackBot:
    """The real Bolt app over HTTP against the fake, a generator registered as online, and a deliverer."""
    app = build_app(
        client=bot_client,
        queue=queue,
        admins=SlackAdmins(),
        signing_secret=signing_secret,
        ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS,
    )
    slack = await slack_http(app)
    await queue.worker_heartbeat("test-worker", device="cpu", model="fake", batch_images=8)
    return SlackBot(app=app, slack=slack, fake=fake_slack, queue=queue, poster=poster)
