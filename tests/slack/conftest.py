"""Fixtures for the Slack suite: a started `FakeSlack`, a real `AsyncWebClient` pointed at it, and
starters that run a Bolt app against it in HTTP mode or Socket Mode.

    async def test_x(fake_slack, slack_client, signing_secret, slack_http):
        app = AsyncApp(client=slack_client, signing_secret=signing_secret)
        ...
        slack = await slack_http(app)            # a SlackEventsDriver
        response = await slack.send_slash_command("/imagine", "a cat", channel_id="C0CHAN")

Whatever a starter opened is closed after the test, before ``fake_slack`` is.
"""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import (
    HttpStarter,
    SlackEventsDriver,
    SocketModeStarter,
    run_socket_mode,
    serve_http,
    web_client_for,
)

SIGNING_SECRET = "test-signing-secret"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A fake Slack listening on 127.0.0.1, closed after the test."""
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_client(fake_slack: FakeSlack) -> AsyncWebClient:
    """A real `AsyncWebClient` with the bot token (``xoxb-test``) talking to ``fake_slack``."""
    return web_client_for(fake_slack)


@pytest.fixture
def signing_secret() -> str:
    return SIGNING_SECRET


@pytest.fixture
async def slack_http(fake_slack: FakeSlack, signing_secret: str) -> AsyncIterator[HttpStarter]:
    """``await slack_http(app)`` serves ``app`` over HTTP and returns a driver that signs requests."""
    async with AsyncExitStack() as stack:

        async def start(app: AsyncApp) -> SlackEventsDriver:
            return await stack.enter_async_context(serve_http(app, fake_slack, signing_secret=signing_secret))

        yield start


@pytest.fixture
async def slack_socket_mode(fake_slack: FakeSlack) -> AsyncIterator[SocketModeStarter]:
    """``await slack_socket_mode(app)`` connects ``app`` over Socket Mode; push with ``socket_send_*``."""
    async with AsyncExitStack() as stack:

        async def start(app: AsyncApp) -> AsyncSocketModeHandler:
            return await stack.enter_async_context(run_socket_mode(app, fake_slack))

        yield start
