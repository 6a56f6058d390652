"""Fixtures for the Slack suite: a started `FakeSlack` and a real `AsyncWebClient` pointed at it.

Running a Bolt app against the fake is done inside the test with `tests.fakes.slack_apps`
(``serve_http`` for HTTP mode, ``run_socket_mode`` for Socket Mode), so each test builds the app
it needs and everything it opened is closed before the test's event loop goes away.
"""

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import web_client_for

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
