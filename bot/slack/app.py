"""The Slack frontend: a Bolt `AsyncApp` with the /imagine commands, buttons and Home tab, served over
Socket Mode (default: no public URL, an ``xapp-`` app-level token) or HTTP (``POST /slack/events``).

    run_slack(settings, queue)     what `imagine serve` enters (bot/frontends.py): serves until exit
    └── build_app(client=…, queue=…, admins=…, signing_secret=…)
        ├── /imagine /imagine-queue /imagine-history            bot/slack/commands.py (acks: acks.py)
        ├── /imagine-usage /imagine-settings /imagine-ban       (admins only)
        ├── imagine:<action>:<job>[:<image>] buttons            bot/slack/actions.py
        └── app_home_opened                                     bot/slack/home.py

Results are not posted here: the generator's delivery loop posts them with `bot.slack.poster`.

HTTP mode: Bolt verifies every request's ``X-Slack-Signature`` (HMAC of the body with the signing
secret) and refuses a ``X-Slack-Request-Timestamp`` more than 5 minutes off (``slack_sdk/signature``);
`ReplayGuard` refuses a signature seen within those 5 minutes, so a captured request cannot be replayed
at all. Both answer 401. Socket Mode needs no signature: the websocket is authenticated.

Multi-workspace: everything is keyed by the request's ``team_id``. With one bot token
(``IMAGINE_SLACK_BOT_TOKEN``) the app serves the workspace of that token; with the OAuth client
credentials (``IMAGINE_SLACK_CLIENT_ID``/``_SECRET``, HTTP mode) any workspace installs it at
``/slack/install`` and each request is authorized with its own workspace's token (bot/slack/oauth.py).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.acks import ACK_DEADLINE_SECONDS
from bot.slack.actions import SlackActions
from bot.slack.admins import SlackAdmins
from bot.slack.blocks import ACTION_ID_PATTERN
from bot.slack.commands import SlackCommands
from bot.slack.home import SlackHome
from bot.slack.jobs import SlackJobs
from bot.slack.oauth import INSTALL_PATH, oauth_flow
from bot.slack.poster import retry_handlers
from jobs.errors import SettingsError
from jobs.queue import Queue
from jobs.settings import Settings
from jobs.slack_installs import SlackInstallations

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
REPLAY_WINDOW_SECONDS = 5 * 60  # Slack's timestamp tolerance: older requests are refused anyway


class ReplayGuard(AsyncMiddleware):
    """Refuses an HTTP request whose signature was already seen inside the timestamp window (401).

    Each signature is an HMAC over the timestamp and the body, so Slack never sends one twice; a repeat
    is a replay. Runs after Bolt's own signature check, so only valid signatures are remembered.
    """

    def __init__(self, *, window_seconds: float = REPLAY_WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature → when first seen (monotonic)

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if req.mode == "socket_mode" or not signature:
            return await next()
        now = time.monotonic()
        while self._seen and _oldest(self._seen) < now - self.window_seconds:
            self._seen.popitem(last=False)
        if signature in self._seen:
            log.warning("replayed Slack request refused", extra={"action": "slack_replay_refused"})
            return BoltResponse(status=401, body='{"error": "replayed request"}')
        self._seen[signature] = now
        return await next()


def _oldest(seen: OrderedDict[str, float]) -> float:
    return next(iter(seen.values()))


def build_app(
    *,
    client: AsyncWebClient,
    queue: Queue,
    admins: SlackAdmins,
    signing_secret: str = "",
    require_worker: bool = True,
    ack_deadline_seconds: float = ACK_DEADLINE_SECONDS,
    oauth: AsyncOAuthFlow | None = None,
) -> AsyncApp:
    """The Bolt app with every listener registered; nothing is opened until it serves. With `oauth`,
    workspaces install through it and each request is authorized by its workspace's installation."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        # Socket Mode has no signatures to check; HTTP mode always checks them.
        request_verification_enabled=bool(signing_secret),
        oauth_flow=oauth,
    )
    if oauth is not None:
        # Bolt's own app_uninstalled / tokens_revoked listeners: they delete the workspace's tokens.
        app.enable_token_revocation_listeners()
    jobs = SlackJobs(queue=queue, require_worker=require_worker)
    commands = SlackCommands(queue=queue, jobs=jobs, admins=admins, ack_deadline_seconds=ack_deadline_seconds)
    actions = SlackActions(queue=queue, jobs=jobs, commands=commands)
    home = SlackHome(queue=queue, commands=commands)

    app.command("/imagine")(commands.imagine)
    app.command("/imagine-queue")(commands.imagine_queue)
    app.command("/imagine-history")(commands.imagine_history)
    app.command("/imagine-usage")(commands.imagine_usage)
    app.command("/imagine-settings")(commands.imagine_settings)
    app.command("/imagine-ban")(commands.imagine_ban)
    app.action(ACTION_ID_PATTERN)(actions.imagine_button)
    app.event("app_home_opened")(home.app_home_opened)
    if signing_secret:
        app.middleware(ReplayGuard())
    app.error(_log_error)
    return app


async def _log_error(error: Exception, body: dict[str, Any], context: AsyncBoltContext) -> None:
    log.error(
        "unhandled error in a Slack listener: %r",
        error,
        exc_info=error,
        extra={"action": "slack_listener_error", "team_id": context.get("team_id"), "type": body.get("type")},
    )


@dataclass
class SlackFrontend:
    """What `run_slack` yields: the app, and where it listens in HTTP mode (None in Socket Mode)."""

    app: AsyncApp
    mode: str  # "socket" or "http"
    url: str | None = None
    install_url: str | None = None  # OAuth installs: the "Add to Slack" link


@asynccontextmanager
async def run_slack(
    settings: Settings,
    queue: Queue,
    *,
    client: AsyncWebClient | None = None,
    http_host: str | None = None,
    http_port: int | None = None,
    admin_user_ids: Collection[str] | None = None,
    require_worker: bool = True,
    ack_deadline_seconds: float = ACK_DEADLINE_SECONDS,
) -> AsyncIterator[SlackFrontend]:
    """Serve Slack while the block is open: Socket Mode when an app-level token is set, else HTTP.

    Settings: ``IMAGINE_SLACK_BOT_TOKEN`` (xoxb-, required), ``IMAGINE_SLACK_APP_TOKEN`` (xapp-, Socket
    Mode), ``IMAGINE_SLACK_SIGNING_SECRET`` + ``IMAGINE_SLACK_HTTP_HOST``/``_PORT`` (HTTP mode),
    ``IMAGINE_SLACK_ADMIN_USER_IDS``. Keyword arguments override them; ``client`` replaces the Web API
    client (tests point it at a fake Slack). The queue is the caller's and stays open.
    """
    if settings.slack_bot_token is None and not settings.slack_oauth:
        raise SettingsError(
            "IMAGINE_SLACK_BOT_TOKEN is not set: the Slack frontend needs a bot token (xoxb-…), "
            "or IMAGINE_SLACK_CLIENT_ID and IMAGINE_SLACK_CLIENT_SECRET for installs by OAuth"
        )
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    if not app_token and not secret:
        raise SettingsError(
            "set IMAGINE_SLACK_APP_TOKEN (xapp-…, Socket Mode) or IMAGINE_SLACK_SIGNING_SECRET (HTTP mode)"
        )
    flow: AsyncOAuthFlow | None = None
    if settings.slack_oauth:
        if app_token:
            raise SettingsError(
                "Slack installs by OAuth need HTTP mode (Slack redirects to /slack/oauth_redirect): "
                "unset IMAGINE_SLACK_APP_TOKEN, or the client id and secret to use one bot token"
            )
        # No token of its own: Bolt gives each listener a copy with its workspace's bot token.
        client = client or AsyncWebClient(base_url=settings.slack_api_url, retry_handlers=retry_handlers())
        installations = SlackInstallations.of_queue(queue, client_id=str(settings.slack_client_id))
        flow = oauth_flow(settings, installations, client)
    else:
        assert settings.slack_bot_token is not None  # checked above
        client = client or AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            retry_handlers=retry_handlers(),
        )
    if admin_user_ids is None:
        admin_user_ids = [user.strip() for user in settings.slack_admin_user_ids.split(",") if user.strip()]
    admins = SlackAdmins(admin_user_ids=admin_user_ids)
    if app_token:
        app = build_app(
            client=client,
            queue=queue,
            admins=admins,
            require_worker=require_worker,
            ack_deadline_seconds=ack_deadline_seconds,
        )
        # Created here, inside the running loop: the handler binds its aiohttp session to it.
        handler = AsyncSocketModeHandler(app, app_token=app_token, web_client=client)
        try:  # closed even when a stop cancels the first connect, which retries while Slack is away
            await handler.connect_async()
            log.info("Slack connected over Socket Mode", extra={"action": "slack_started", "mode": "socket"})
            yield SlackFrontend(app=app, mode="socket")
        finally:
            await handler.close_async()
        return
    app = build_app(
        client=client,
        queue=queue,
        admins=admins,
        signing_secret=secret,
        require_worker=require_worker,
        ack_deadline_seconds=ack_deadline_seconds,
        oauth=flow,
    )
    runner = web.AppRunner(
        app.web_app(path=EVENTS_PATH), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        await web.TCPSite(
            runner,
            settings.slack_http_host if http_host is None else http_host,
            settings.slack_http_port if http_port is None else http_port,
        ).start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}{EVENTS_PATH}"
        install = f"http://{host}:{port}{INSTALL_PATH}" if flow is not None else None
        log.info("Slack events on %s", url, extra={"action": "slack_started", "mode": "http"})
        yield SlackFrontend(app=app, mode="http", url=url, install_url=install)
    finally:
        await runner.cleanup()
