"""Running a real Bolt `AsyncApp` against `FakeSlack`, in HTTP mode and in Socket Mode.

- `serve_http(app, fake, signing_secret=…)`: serves ``app.web_app(path="/slack/events")`` on
  127.0.0.1 and yields a `SlackEventsDriver` that signs and POSTs commands and clicks to it.
- `run_socket_mode(app, fake)`: connects an ``AsyncSocketModeHandler`` through the fake's
  ``apps.connections.open``; send envelopes with ``fake.socket_send_slash_command(…)``.

Both close everything they opened on exit, so no task or aiohttp session outlives a test.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack, sign_request

EVENTS_PATH = "/slack/events"
#: The ``slack_http`` / ``slack_socket_mode`` fixtures: start an app, get its driver or handler.
HttpStarter = Callable[[AsyncApp], Awaitable["SlackEventsDriver"]]
SocketModeStarter = Callable[[AsyncApp], Awaitable[AsyncSocketModeHandler]]
#: Slack's clock-skew window for request timestamps, in seconds; older requests are replays.
SIGNATURE_MAX_AGE_SECONDS = 5 * 60


@dataclass
class DriverResponse:
    """The app's HTTP answer to one signed request."""

    status: int
    text: str
    elapsed: float  # seconds from sending to the answer
    response_url_id: str

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class SlackEventsDriver:
    """Plays Slack's side of HTTP mode: signs slash commands and clicks and POSTs them to the app."""

    def __init__(self, fake: FakeSlack, *, events_url: str, signing_secret: str) -> None:
        self.fake = fake
        self.events_url = events_url
        self.signing_secret = signing_secret
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_slash_command(
        self,
        command: str,
        text: str = "",
        *,
        bad_signature: bool = False,
        timestamp_skew: float = 0.0,
        **fields: Any,
    ) -> DriverResponse:
        """POST a signed, form-encoded slash command.

        ``bad_signature=True`` signs with the wrong secret; ``timestamp_skew=-600`` sends a
        correctly signed but stale request. ``fields`` go to `FakeSlack.slash_command_payload`.
        """
        payload = self.fake.slash_command_payload(command, text, **fields)
        return await self._post(urlencode(payload), payload["response_url"], bad_signature, timestamp_skew)

    async def send_block_action(
        self,
        action_id: str,
        value: str | None = None,
        *,
        bad_signature: bool = False,
        timestamp_skew: float = 0.0,
        **fields: Any,
    ) -> DriverResponse:
        """POST a signed ``payload=<json>`` click (``fields``: see `FakeSlack.block_actions_payload`)."""
        payload = self.fake.block_actions_payload(action_id, value, **fields)
        body = urlencode({"payload": json.dumps(payload)})
        return await self._post(body, payload["response_url"], bad_signature, timestamp_skew)

    async def send_event(self, event: dict[str, Any], *, team_id: str | None = None) -> DriverResponse:
        """POST a signed Events API callback (JSON), as Slack sends ``app_uninstalled``."""
        payload = self.fake.event_payload(event, team_id=team_id)
        return await self._post(json.dumps(payload), "", False, 0.0, content_type="application/json")

    async def _post(
        self,
        body: str,
        response_url: str,
        bad_signature: bool,
        timestamp_skew: float,
        *,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> DriverResponse:
        timestamp = str(int(time.time() + timestamp_skew))
        secret = "not-the-signing-secret" if bad_signature else self.signing_secret
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign_request(secret, timestamp, body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if self._session is None:
            self._session = aiohttp.ClientSession()
        started = time.monotonic()
        async with self._session.post(self.events_url, data=body.encode(), headers=headers) as response:
            text = await response.text()
        return DriverResponse(
            status=response.status,
            text=text,
            elapsed=time.monotonic() - started,
            response_url_id=response_url.rsplit("/", 1)[-1],
        )


def web_client_for(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    """A real `AsyncWebClient` with the bot token, pointed at the fake."""
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url, **kwargs)


@asynccontextmanager
async def serve_http(
    app: AsyncApp, fake: FakeSlack, *, signing_secret: str
) -> AsyncIterator[SlackEventsDriver]:
    """Serve ``app`` at ``/slack/events`` on 127.0.0.1 and yield a driver that talks to it."""
    runner = web.AppRunner(app.web_app(path=EVENTS_PATH), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    driver = SlackEventsDriver(
        fake, events_url=f"http://127.0.0.1:{port}{EVENTS_PATH}", signing_secret=signing_secret
    )
    try:
        yield driver
    finally:
        await driver.aclose()
        await runner.cleanup()


@asynccontextmanager
async def run_socket_mode(app: AsyncApp, fake: FakeSlack) -> AsyncIterator[AsyncSocketModeHandler]:
    """Connect ``app`` to the fake over Socket Mode; yields once the websocket is open."""
    handler = AsyncSocketModeHandler(app, app_token=fake.app_token, web_client=web_client_for(fake))
    try:
        await handler.connect_async()
        await fake.wait_socket_connected()
        yield handler
    finally:
        await handler.close_async()
        await fake.wait_until(lambda: fake.socket_connection_count == 0, what="the socket to close")
