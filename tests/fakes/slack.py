"""A fake Slack that a real `slack_sdk` client and a real Bolt app talk to over 127.0.0.1.

One aiohttp server plays every part of Slack the bot touches:

- the Web API under ``/api/{method}`` (what ``AsyncWebClient(base_url=fake.api_url)`` calls);
- the upload host behind ``files.getUploadURLExternal`` (``POST /upload/{file_id}``, raw bytes);
- ``response_url`` endpoints (``/response_url/{id}``), counting uses as Slack does;
- the Socket Mode websocket (``/link/``) handed out by ``apps.connections.open``;
- "Add to Slack" (OAuth v2): the authorize page ``/oauth/v2/authorize``, where the admin who opens it
  approves at once for the workspace named by `approve_installs_as`, redirecting to the app's redirect
  URL with a one-time ``code``, and ``oauth.v2.access``, which trades the code for that workspace's own
  bot token. Each installed workspace (`workspaces`) has its token; `uninstall` revokes it;
- "Sign in with Slack" (OpenID Connect): the discovery document ``/.well-known/openid-configuration``
  and its keys ``/openid/connect/keys`` (an RS256 key generated per fake), ``/openid/connect/authorize``
  (a consent page for the person `sign_in_browser_as` names), ``openid.connect.token`` (an id_token
  signed with that key, carrying the request's nonce; `forge_next_id_token` spoils the next one) and
  ``openid.connect.userInfo``.

Tests push slash commands and button clicks over the socket with ``socket_send_*``, or, in HTTP
mode, sign and POST them to the app with ``tests.fakes.slack_apps.SlackEventsDriver``; then they
assert on what the fake recorded: ``calls`` (every request, in order), ``messages``,
``ephemerals``, ``uploads`` (with their bytes), ``response_urls``, ``home_views``,
``socket_acks``. ``image`` blocks in chat.postMessage / chat.update must name a completed upload
(shared or not) by ``slack_file``, as Slack checks (``iter_slack_files`` finds them). Faults are
switched on per Web API method (or `UPLOAD_STEP`) with the switches every fake has
(tests/fakes/server.py: ``rate_limit``, ``server_error``, ``fail``, ``slow``, ``clear_faults``) and
Slack's own ``api_error``; ``wait_until`` waits (bounded) for what the app does.

How slack_sdk 3.48 puts arguments on the wire (``slack_sdk/web/internal_utils.py``
``_build_req_args``): ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and
``views.publish`` send a JSON body; most other methods send query parameters on a POST with an
empty form body (``params=``); ``users.info`` and ``conversations.info`` are GETs. The token
travels as ``Authorization: Bearer …`` (the ``xapp-`` token for ``apps.connections.open``).
The fake merges query, form and JSON arguments, so it does not care which one a caller used.

Where the fake had to pick behaviour Slack does not document precisely, the choice is noted
next to the code (search for "Slack:").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.fakes.server import DEFAULT_WAIT_SECONDS, FakeServer, Page, consent_page

#: Slack lets an app use one response_url this many times ...
RESPONSE_URL_MAX_USES = 5
#: ... within this many seconds of the interaction.
RESPONSE_URL_LIFETIME_SECONDS = 30 * 60
# Methods that need the app-level (xapp-) token instead of the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
# Arguments that carry JSON; the others stay strings even when they look like JSON (a prompt "[x]").
_JSON_ARGS = ("blocks", "attachments", "view", "files", "metadata")
#: `ApiCall.method` of the requests that are not Web API methods.
UPLOAD_STEP = "upload"
RESPONSE_URL_STEP = "response_url"


# ---------------------------------------------------------------------------------------------
# What the fake records


@dataclass
class ApiCall:
    """One request as the fake received it.

    ``method`` is the Web API method (``chat.postMessage``), or `UPLOAD_STEP` for the bytes POSTed
    to an upload_url (``args`` then holds ``file_id``), or `RESPONSE_URL_STEP` for a response_url
    post (``args`` holds its JSON body plus ``response_url_id``).
    """

    method: str
    args: dict[str, Any]
    files: dict[str, bytes]  # multipart file parts, by field name
    token: str | None
    http_method: str
    content_type: str
    at: float  # time.monotonic() on arrival
    status: int = 0  # the HTTP status the fake answered with
    response: dict[str, Any] = field(default_factory=dict)


@dataclass
class Message:
    """A message posted with chat.postMessage; chat.update edits it in place and keeps history."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier versions, oldest first
    is_deleted: bool = False

    @property
    def update_count(self) -> int:
        return len(self.history)


@dataclass
class Upload:
    """One file of the files.getUploadURLExternal → POST bytes → files.completeUploadExternal flow."""

    file_id: str
    filename: str
    length: int
    alt_txt: str | None = None
    content: bytes | None = None  # the raw bytes POSTed to upload_url
    content_type: str | None = None
    is_completed: bool = False
    title: str | None = None
    channel_id: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    blocks: list[dict[str, Any]] | None = None


@dataclass
class Workspace:
    """A workspace that installed the app through the OAuth flow, with its own bot token."""

    team_id: str
    team_name: str
    bot_token: str
    bot_user_id: str
    installer_user_id: str
    is_revoked: bool = False


@dataclass
class ResponseUrl:
    """A response_url handed to the app with a slash command or a click."""

    id: str
    url: str
    created_at: float  # FakeSlack.now() at creation
    bodies: list[dict[str, Any]] = field(default_factory=list)  # accepted posts only
    refused_count: int = 0


@dataclass
class SocketAck:
    """What the app sent back over the websocket for one envelope."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float


# ---------------------------------------------------------------------------------------------
# Small helpers


def sign_request(signing_secret: str, timestamp: str, body: str) -> str:
    """Slack's request signature: ``v0=`` + HMAC-SHA256(secret, ``v0:{timestamp}:{body}``)."""
    basestring = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(signing_secret.encode(), basestring, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def _decode_json_fields(args: dict[str, Any]) -> dict[str, Any]:
    """Form-encoded and query callers send lists and objects as JSON strings; decode those."""
    decoded = dict(args)
    for name in _JSON_ARGS:
        value = decoded.get(name)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                decoded[name] = json.loads(value)
    return decoded


def _ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def _error(error: str) -> dict[str, Any]:
    return {"ok": False, "error": error}


class _ApiError(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": …}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


# ---------------------------------------------------------------------------------------------
# The fake


class FakeSlack(FakeServer):
    """A local Slack: Web API, upload host, response_urls and Socket Mode on one port.

    Use as ``async with FakeSlack() as slack:`` or call `start` / `close` yourself. Its clock (`now`,
    `advance_clock`) is wall-clock time: message ts and response_url expiry read it.
    """

    name = "Slack"
    default_retry_after = 1  # Slack's Retry-After is whole seconds

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        team_id: str = "T0TEAM",
        team_name: str = "Fake Team",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A0APP",
        client_id: str = "1111.2222",
        client_secret: str = "fake-client-secret",
    ) -> None:
        super().__init__(clock=time.time)
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.client_id = client_id
        self.client_secret = client_secret

        # OAuth installs: the app's configured redirect URL (Slack's "Redirect URLs"), who approves the
        # next install, codes handed out and not yet exchanged, and the workspaces installed.
        self.oauth_redirect_url: str | None = None
        self._approving: tuple[str, str, str] | None = None  # team id, team name, installing user
        self._codes: dict[str, tuple[str, str, str]] = {}
        self.oauth_redirects: list[str] = []  # every redirect the authorize page answered with
        self.workspaces: dict[str, Workspace] = {}
        self._current_token: str | None = None
        # Sign in with Slack: who is signed in to Slack in the browser, codes, and user tokens handed out.
        self.browser_user: tuple[str, str, str] | None = None  # user id, team id, name
        self._openid_codes: dict[str, tuple[tuple[str, str, str], str]] = {}  # code: person, nonce
        self._signing_key: RSAKey | None = None  # made when first needed: most tests never sign anyone in
        self._forgery: dict[str, Any] | None = None
        self.user_tokens: dict[str, tuple[str, str, str]] = {}
        self._current_auth: str = ""

        # Recorded traffic and state, for assertions.
        self.calls: list[ApiCall] = []
        self.messages: list[Message] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.uploads: dict[str, Upload] = {}
        self.response_urls: dict[str, ResponseUrl] = {}
        self.home_views: dict[str, dict[str, Any]] = {}
        self.socket_acks: list[SocketAck] = []

        # Configurable workspace.
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}

        self._ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._retired_sockets: set[int] = set()  # id()s of sockets told to disconnect
        self.socket_connections_total = 0
        self._socket_tickets: set[str] = set()
        self._pending_acks: dict[str, asyncio.Future[SocketAck]] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_post("/response_url/{id}", self._handle_response_url)
        app.router.add_get("/link/", self._handle_socket)
        app.router.add_get("/link", self._handle_socket)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_get("/openid/connect/authorize", self._openid_page)
        app.router.add_post("/openid/connect/authorize", self._openid_approve)
        app.router.add_get("/.well-known/openid-configuration", self._openid_configuration)
        app.router.add_get("/openid/connect/keys", self._openid_keys)
        return app

    async def _close_connections(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"fake slack closing")
        for future in self._pending_acks.values():
            future.cancel()

    @property
    def api_url(self) -> str:
        """What to pass as ``AsyncWebClient(base_url=…)``; slack_sdk needs the trailing slash."""
        return f"{self.base_url}/api/"

    # -- OAuth installs ------------------------------------------------------------------------

    def approve_installs_as(self, team_id: str, team_name: str, *, user_id: str = "U0ADMIN") -> None:
        """Whoever opens the authorize page next is an admin of `team_id` and clicks "Allow"."""
        self._approving = (team_id, team_name, user_id)

    def uninstall(self, team_id: str) -> None:
        """The workspace removed the app: its token stops working (send the app the event yourself)."""
        self.workspaces[team_id].is_revoked = True

    def token_of(self, team_id: str) -> str:
        return self.workspaces[team_id].bot_token

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        """Slack's authorize page, approved at once: back to the app with a code and the app's state."""
        query = request.query
        if query.get("client_id") != self.client_id or self._approving is None:
            return web.Response(status=400, text="invalid_client_id or nobody to approve")
        redirect = query.get("redirect_uri") or self.oauth_redirect_url
        if not redirect or (self.oauth_redirect_url and redirect != self.oauth_redirect_url):
            return web.Response(status=400, text="bad_redirect_uri")
        code = uuid.uuid4().hex
        self._codes[code] = self._approving
        location = f"{redirect}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        self.oauth_redirects.append(location)
        raise web.HTTPFound(location)

    def _oauth_v2_access(self, args: dict[str, Any]) -> dict[str, Any]:
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if self._current_auth.startswith("Basic "):
            decoded = base64.b64decode(self._current_auth.removeprefix("Basic ")).decode()
            client_id, _, client_secret = decoded.partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            raise _ApiError("invalid_client_id" if client_id != self.client_id else "bad_client_secret")
        approved = self._codes.pop(str(args.get("code", "")), None)  # Slack: a code works once
        if approved is None:
            raise _ApiError("invalid_code")
        team_id, team_name, user_id = approved
        workspace = Workspace(
            team_id=team_id,
            team_name=team_name,
            bot_token=f"xoxb-{team_id}-{uuid.uuid4().hex[:8]}",
            bot_user_id=f"U0BOT{team_id}",
            installer_user_id=user_id,
        )
        self.workspaces[team_id] = workspace
        return _ok(
            app_id=self.app_id,
            authed_user={"id": user_id},
            scope=args.get("scope", "commands,chat:write"),
            token_type="bot",
            access_token=workspace.bot_token,
            bot_user_id=workspace.bot_user_id,
            team={"id": team_id, "name": team_name},
            enterprise=None,
            is_enterprise_install=False,
        )

    # -- Sign in with Slack (OpenID Connect) ----------------------------------------------------------

    def sign_in_browser_as(self, user_id: str, *, team_id: str, name: str) -> None:
        self.browser_user = (user_id, team_id, name)

    @property
    def signing_key(self) -> RSAKey:
        if self._signing_key is None:
            self._signing_key = RSAKey.generate_key(
                2048, parameters={"kid": f"fake-slack-{uuid.uuid4().hex[:6]}"}
            )
        return self._signing_key

    def forge_next_id_token(self, *, nonce: str | None = None, foreign_key: bool = False) -> None:
        """The next id_token carries another nonce, or is signed with a key that is not in the JWKS."""
        self._forgery = {"nonce": nonce, "foreign_key": foreign_key}

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        """Like https://slack.com/.well-known/openid-configuration, with this fake's addresses."""
        return web.json_response(
            {
                "issuer": self.base_url,
                "authorization_endpoint": f"{self.base_url}/openid/connect/authorize",
                "token_endpoint": f"{self.api_url}openid.connect.token",
                "userinfo_endpoint": f"{self.api_url}openid.connect.userInfo",
                "jwks_uri": f"{self.base_url}/openid/connect/keys",
                "scopes_supported": ["openid", "profile", "email"],
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }
        )

    async def _openid_keys(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.signing_key]).as_dict(private=False))

    def _id_token(self, person: tuple[str, str, str], nonce: str) -> str:
        user_id, team_id, name = person
        forgery, self._forgery = self._forgery or {}, None
        now = int(time.time())
        claims = {
            "iss": self.base_url,
            "sub": user_id,
            "aud": self.client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "nonce": forgery.get("nonce") or nonce,
            "https://slack.com/user_id": user_id,
            "https://slack.com/team_id": team_id,
            "name": name,
        }
        key = self.signing_key
        if forgery.get("foreign_key"):  # same kid, other key: only the signature gives it away
            key = RSAKey.generate_key(2048, parameters={"kid": self.signing_key.kid or ""})
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    async def _openid_page(self, request: web.Request) -> web.Response:
        query = request.query
        scopes = query.get("scope", "").split()
        if query.get("client_id") != self.client_id or "openid" not in scopes or self.browser_user is None:
            return web.Response(status=400, text="invalid_request")
        body = f"<h1>Sign in to imagine as {html.escape(self.browser_user[2])}</h1>"
        return consent_page(
            "Sign in with Slack", body, action="/openid/connect/authorize", button="Allow", query=query
        )

    async def _openid_approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.browser_user is None or not form.get("redirect_uri"):
            return web.Response(status=400, text="invalid_request")
        code = uuid.uuid4().hex
        self._openid_codes[code] = (self.browser_user, str(form.get("nonce", "")))
        query = urlencode({"code": code, "state": str(form.get("state", ""))})
        raise web.HTTPFound(f"{form['redirect_uri']}?{query}")

    def _openid_token(self, args: dict[str, Any]) -> dict[str, Any]:
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        if self._current_auth.startswith("Basic "):
            decoded = base64.b64decode(self._current_auth.removeprefix("Basic ")).decode()
            client_id, _, client_secret = decoded.partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            raise _ApiError("invalid_client_id")
        approved = self._openid_codes.pop(str(args.get("code", "")), None)  # a code works once
        if approved is None:
            raise _ApiError("invalid_code")
        person, nonce = approved
        token = f"xoxp-{uuid.uuid4().hex[:12]}"
        self.user_tokens[token] = person
        return _ok(access_token=token, token_type="Bearer", id_token=self._id_token(person, nonce))

    def _openid_user_info(self, args: dict[str, Any]) -> dict[str, Any]:
        person = self.user_tokens.get(self._current_token or "")
        if person is None:
            raise _ApiError("invalid_auth")
        user_id, team_id, name = person
        return _ok(
            sub=user_id,
            **{"https://slack.com/user_id": user_id, "https://slack.com/team_id": team_id},
            name=name,
        )

    def _workspace_of_token(self, token: str | None) -> Workspace | None:
        return next((w for w in self.workspaces.values() if w.bot_token == token), None)

    # -- workspace configuration ---------------------------------------------------------------

    def add_user(
        self, user_id: str, *, name: str | None = None, is_admin: bool = False, is_owner: bool = False
    ) -> dict[str, Any]:
        """A workspace member that users.info knows. Unknown ids get ``user_not_found``."""
        name = name or user_id.lower()
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": name.title(),
            "deleted": False,
            "is_bot": False,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": False,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": name.title()},
        }
        self.users[user_id] = user
        return user

    def add_channel(self, channel_id: str, *, name: str | None = None, is_member: bool = True) -> None:
        """A channel; with ``is_member=False`` posting to it fails with ``not_in_channel``.

        Channels never added behave as public channels the bot is a member of.
        """
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name or channel_id.lower(),
            "is_member": is_member,
        }

    def _channel(self, channel_id: str) -> dict[str, Any]:
        return self.channels.get(channel_id) or {
            "id": channel_id,
            "name": channel_id.lower(),
            "is_member": True,
        }

    # -- fault switches (rate_limit, server_error, fail, slow, clear_faults: see FakeServer) -----------
    #
    # A route is a Web API method, `UPLOAD_STEP` (the POST of the bytes), or ``"*"`` (any; a fault armed
    # for the method itself goes first).

    def api_error(self, method: str, error: str, *, times: int | None = 1) -> None:
        """HTTP 200 ``{"ok": false, "error": error}``, e.g. ``channel_not_found``."""
        self.fail(method, times=times, status=200, error=error)

    def _error_body(self, status: int, error: str | None) -> dict[str, Any]:
        return _error(error or "fatal_error")

    def _rate_limit_answer(self, retry_after: float) -> tuple[dict[str, Any], dict[str, str]]:
        # Slack: HTTP 429 + Retry-After + {"ok": false, "error": "ratelimited"}.
        return _error("ratelimited"), {"Retry-After": str(retry_after)}

    # -- queries for assertions ---------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    def message(self, channel: str, ts: str) -> Message:
        for message in self.messages:
            if message.channel == channel and message.ts == ts:
                return message
        raise KeyError(f"no message {ts} in {channel}")

    def messages_in(self, channel: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and not m.is_deleted]

    def completed_uploads(self, channel_id: str | None = None) -> list[Upload]:
        return [
            upload
            for upload in self.uploads.values()
            if upload.is_completed and (channel_id is None or upload.channel_id == channel_id)
        ]

    async def wait_for_calls(
        self, method: str, count: int = 1, *, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[ApiCall]:
        """Wait until ``method`` was answered ``count`` times; return all its calls."""
        await self.wait_until(
            lambda: sum(1 for c in self.calls_to(method) if c.status) >= count,
            timeout=timeout,
            what=f"{count} answered {method} call(s)",
        )
        return self.calls_to(method)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):07d}"

    def _next_ts(self) -> str:
        return f"{int(self.now())}.{next(self._ids):06d}"

    # -- Web API -------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args, files = await self._parse_args(request)
        self._current_auth = request.headers.get("Authorization", "")
        token = self._token_of(request, args)
        call = await self._record(method, request, args, files, token)
        self._current_token = token
        status, body, headers = await self._answer(method, args, token)
        if isinstance(body, Page):
            call.status, call.response = status, {}
            self._notify()
            return web.Response(
                status=status, text=body.text, content_type=body.content_type, headers=headers
            )
        call.status, call.response = status, body
        self._notify()
        return web.json_response(body, status=status, headers=headers)

    async def _answer(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        failure = await self._apply_fault(method)
        if failure is not None:
            return failure
        auth_error = self._check_token(method, token)
        if auth_error:
            return 200, _error(auth_error), {}
        handler = self._methods().get(method)
        if handler is None:
            return 200, _error("unknown_method"), {}
        try:
            return 200, handler(args), {}
        except _ApiError as exc:
            return 200, _error(exc.error), {}

    @staticmethod
    async def _parse_args(request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Query string, form and JSON body merged into one dict (JSON fields decoded), and files."""
        args: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                for name, value in (await request.post()).items():
                    if isinstance(value, str):
                        args[name] = value
                    else:
                        files[name] = value.file.read()
        return _decode_json_fields(args), files

    async def _record(
        self,
        method: str,
        request: web.Request,
        args: dict[str, Any],
        files: dict[str, bytes],
        token: str | None,
    ) -> ApiCall:
        call = ApiCall(
            method=method,
            args=args,
            files=files,
            token=token,
            http_method=request.method,
            content_type=request.content_type,
            at=time.monotonic(),
        )
        self.calls.append(call)
        self._notify()
        return call

    async def _apply_fault(self, method: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Sleep for a `slow` fault; return the failing answer (status, body, headers) of the others."""
        fault = await self._due_fault(lambda f: f.route == method, lambda f: f.route == "*")
        if fault is None or fault.status is None:
            return None
        return fault.status, fault.body, fault.headers

    @staticmethod
    def _token_of(request: web.Request, args: dict[str, Any]) -> str | None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            return authorization.removeprefix("Bearer ").strip()
        token = args.pop("token", None)
        return token if isinstance(token, str) else None

    def _check_token(self, method: str, token: str | None) -> str | None:
        # Slack: no token at all is "not_authed"; a wrong one is "invalid_auth"; a revoked one
        # "token_revoked". oauth.v2.access authenticates with the client id and secret instead.
        if method in ("oauth.v2.access", "openid.connect.token"):
            return None
        if method == "openid.connect.userInfo":
            return None if token in self.user_tokens else "invalid_auth"
        if not token:
            return "not_authed"
        workspace = self._workspace_of_token(token)
        if workspace is not None and method not in _APP_TOKEN_METHODS:
            return "token_revoked" if workspace.is_revoked else None
        expected = self.app_token if method in _APP_TOKEN_METHODS else self.bot_token
        return None if token == expected else "invalid_auth"

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "users.info": self._users_info,
            "views.publish": self._views_publish,
            "conversations.info": self._conversations_info,
            "conversations.join": self._conversations_join,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "apps.connections.open": self._apps_connections_open,
            "oauth.v2.access": self._oauth_v2_access,
            "openid.connect.token": self._openid_token,
            "openid.connect.userInfo": self._openid_user_info,
        }

    def _require(self, args: dict[str, Any], *names: str) -> None:
        for name in names:
            if args.get(name) in (None, ""):
                raise _ApiError("invalid_arguments")

    def _require_member(self, channel_id: str) -> None:
        if not self._channel(channel_id)["is_member"]:
            raise _ApiError("not_in_channel")

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        workspace = self._workspace_of_token(self._current_token)
        return _ok(
            url=f"{self.base_url}/",
            team=workspace.team_name if workspace else self.team_name,
            user="imagine",
            team_id=workspace.team_id if workspace else self.team_id,
            user_id=workspace.bot_user_id if workspace else self.bot_user_id,
            bot_id=self.bot_id,
            is_enterprise_install=False,
        )

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _ApiError("no_text")
        self._require_member(args["channel"])
        self._check_images(args.get("blocks"))
        message = Message(
            channel=args["channel"],
            ts=self._next_ts(),
            text=args.get("text"),
            blocks=args.get("blocks"),
            thread_ts=args.get("thread_ts"),
        )
        self.messages.append(message)
        return _ok(channel=message.channel, ts=message.ts, message=self._message_json(message))

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel", "ts")
        message = self._find_message(args["channel"], args["ts"])
        self._check_images(args.get("blocks"))
        message.history.append({"text": message.text, "blocks": message.blocks})
        if "text" in args:
            message.text = args["text"]
        if "blocks" in args:
            message.blocks = args["blocks"]
        return _ok(
            channel=message.channel, ts=message.ts, text=message.text, message=self._message_json(message)
        )

    def _check_images(self, blocks: Any) -> None:
        """Slack: an ``image`` block's ``slack_file`` must name a file whose upload was completed (shared
        in a channel or not), and every image needs its ``alt_text``; otherwise ``invalid_blocks``."""
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict) or block.get("type") != "image":
                continue
            if not block.get("alt_text"):
                raise _ApiError("invalid_blocks")
            if "slack_file" in block:
                upload = self.uploads.get(str((block["slack_file"] or {}).get("id", "")))
                if upload is None or not upload.is_completed:
                    raise _ApiError("invalid_blocks")

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel", "ts")
        message = self._find_message(args["channel"], args["ts"])
        message.is_deleted = True
        return _ok(channel=message.channel, ts=message.ts)

    def _find_message(self, channel: str, ts: str) -> Message:
        try:
            message = self.message(channel, ts)
        except KeyError:
            raise _ApiError("message_not_found") from None
        if message.is_deleted:
            raise _ApiError("message_not_found")
        return message

    def _message_json(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": message.ts,
        }
        body["text"] = message.text or ""
        if message.blocks is not None:
            body["blocks"] = message.blocks
        if message.thread_ts:
            body["thread_ts"] = message.thread_ts
        return body

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel", "user")
        self._require_member(args["channel"])
        ephemeral = {key: args.get(key) for key in ("channel", "user", "text", "blocks", "thread_ts")}
        self.ephemerals.append(ephemeral)
        return _ok(message_ts=self._next_ts())

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "user")
        user = self.users.get(args["user"])
        if user is None:
            raise _ApiError("user_not_found")
        return _ok(user=user)

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "user_id", "view")
        view = args["view"]
        if not isinstance(view, dict) or view.get("type") != "home":
            raise _ApiError("invalid_arguments")
        self.home_views[args["user_id"]] = view
        return _ok(view={"id": self._next_id("V"), "team_id": self.team_id, **view})

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel")
        return _ok(channel=dict(self._channel(args["channel"])))

    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "channel")
        channel = self._channel(args["channel"])
        channel["is_member"] = True
        self.channels[channel["id"]] = channel
        return _ok(channel=dict(channel))

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "filename", "length")
        file_id = self._next_id("F")
        self.uploads[file_id] = Upload(
            file_id=file_id,
            filename=args["filename"],
            length=int(args["length"]),
            alt_txt=args.get("alt_txt"),
        )
        return _ok(upload_url=f"{self.base_url}/upload/{file_id}", file_id=file_id)

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require(args, "files")
        files = args["files"]
        if not isinstance(files, list) or not files:
            raise _ApiError("invalid_arguments")
        channel_id = args.get("channel_id")
        if channel_id:
            self._require_member(channel_id)
        uploads = []
        for item in files:
            upload = self.uploads.get(item.get("id", ""))
            if upload is None or upload.content is None:
                raise _ApiError("file_not_found")  # Slack: never-uploaded ids are refused
            uploads.append(upload)
        for upload, item in zip(uploads, files, strict=True):
            upload.is_completed = True
            upload.title = item.get("title")
            upload.channel_id = channel_id
            upload.initial_comment = args.get("initial_comment")
            upload.thread_ts = args.get("thread_ts")
            upload.blocks = args.get("blocks")
        return _ok(files=[self._file_json(upload) for upload in uploads])

    def _file_json(self, upload: Upload) -> dict[str, Any]:
        return {
            "id": upload.file_id,
            "name": upload.filename,
            "title": upload.title or upload.filename,
            "size": len(upload.content or b""),
            "user": self.bot_user_id,
            "channels": [upload.channel_id] if upload.channel_id else [],
            "url_private": f"{self.base_url}/files/{upload.file_id}/{upload.filename}",
        }

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._socket_tickets.add(ticket)
        return _ok(url=f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}")

    # -- the upload host -----------------------------------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        content = await request.read()
        call = await self._record(UPLOAD_STEP, request, {"file_id": file_id}, {"content": content}, None)
        upload = self.uploads.get(file_id)
        failure = await self._apply_fault(UPLOAD_STEP)
        if failure is not None or upload is None:
            call.status = failure[0] if failure else 404
            self._notify()
            return web.Response(status=call.status, text="upload failed")
        upload.content = content
        upload.content_type = request.content_type
        call.status = 200
        self._notify()
        # Slack: the upload host answers 200 text/plain "OK - <bytes>".
        return web.Response(text=f"OK - {len(content)}")

    # -- response_url --------------------------------------------------------------------------

    def new_response_url(self) -> ResponseUrl:
        response_id = uuid.uuid4().hex[:12]
        url = f"{self.base_url}/response_url/{response_id}"
        response_url = ResponseUrl(id=response_id, url=url, created_at=self.now())
        self.response_urls[response_id] = response_url
        return response_url

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        response_id = request.match_info["id"]
        body, files = await self._parse_args(request)
        call = await self._record(
            RESPONSE_URL_STEP, request, {**body, "response_url_id": response_id}, files, None
        )
        response_url = self.response_urls.get(response_id)
        refusal = "invalid_url" if response_url is None else self._response_url_refusal(response_url)
        status, answer = (404, _error(refusal)) if refusal else (200, _ok())
        if response_url is not None:
            if refusal:
                response_url.refused_count += 1
            else:
                response_url.bodies.append(body)
        call.status, call.response = status, answer
        self._notify()
        return web.json_response(answer, status=status)

    def _response_url_refusal(self, response_url: ResponseUrl) -> str | None:
        # Slack: "up to 5 times within 30 minutes". The exact refusal is not documented; third-party
        # code reports HTTP 404 with "expired_url" (too late) and "used_url" (too many uses).
        if self.now() - response_url.created_at > RESPONSE_URL_LIFETIME_SECONDS:
            return "expired_url"
        if len(response_url.bodies) >= RESPONSE_URL_MAX_USES:
            return "used_url"
        return None

    # -- payloads Slack sends to the app ------------------------------------------------------

    def slash_command_payload(
        self,
        command: str,
        text: str = "",
        *,
        user_id: str = "U0USER",
        user_name: str = "user",
        channel_id: str = "C0CHAN",
        channel_name: str = "general",
        team_id: str | None = None,
    ) -> dict[str, str]:
        """The fields of a slash command (form-encoded over HTTP, a JSON object over the socket), from
        the fake's own workspace or, with `team_id`, from a workspace that installed the app."""
        return {
            "token": "verification-token-unused",
            "team_id": team_id or self.team_id,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url().url,
            "trigger_id": self._next_id("trigger."),
        }

    def event_payload(self, event: dict[str, Any], *, team_id: str | None = None) -> dict[str, Any]:
        """An Events API ``event_callback`` (``app_uninstalled``, ``tokens_revoked``, …) of a workspace."""
        return {
            "token": "verification-token-unused",
            "team_id": team_id or self.team_id,
            "api_app_id": self.app_id,
            "event": {**event, "event_ts": f"{self.now():.6f}"},
            "type": "event_callback",
            "event_id": self._next_id("Ev"),
            "event_time": int(self.now()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id or self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def block_actions_payload(
        self,
        action_id: str,
        value: str | None = None,
        *,
        block_id: str = "actions",
        user_id: str = "U0USER",
        user_name: str = "user",
        channel_id: str = "C0CHAN",
        message_ts: str | None = None,
    ) -> dict[str, Any]:
        """A ``block_actions`` interaction: one button click.

        With the ``message_ts`` of a message the bot posted, the click is on that message's button
        ``action_id`` (which must exist): its block_id, value and text are taken from the message.
        Otherwise the click is on a message the fake never saw, built from the arguments.
        """
        action: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "value": value or "",
            "text": {"type": "plain_text", "text": action_id},
        }
        message: dict[str, Any] = {"type": "message", "user": self.bot_user_id, "ts": message_ts, "text": ""}
        posted = self._find_posted(channel_id, message_ts)
        if posted is not None:
            message = self._message_json(posted)
            action = self._button_on(posted, action_id, value)
        message_ts = message_ts or self._next_ts()
        message["ts"] = message_ts
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "verification-token-unused",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id},
            "trigger_id": self._next_id("trigger."),
            "team": {"id": self.team_id, "domain": "fake"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": self._channel(channel_id)["name"]},
            "message": message,
            "response_url": self.new_response_url().url,
            "actions": [{**action, "action_ts": f"{self.now():.6f}"}],
        }

    def _find_posted(self, channel_id: str, message_ts: str | None) -> Message | None:
        if message_ts is None:
            return None
        try:
            return self.message(channel_id, message_ts)
        except KeyError:
            return None

    @staticmethod
    def _button_on(message: Message, action_id: str, value: str | None) -> dict[str, Any]:
        for block in message.blocks or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    if value is not None and value != element.get("value"):
                        raise AssertionError(
                            f"button {action_id} has value {element.get('value')!r}, not {value!r}"
                        )
                    return {
                        "type": element.get("type", "button"),
                        "action_id": action_id,
                        "block_id": block.get("block_id", "actions"),
                        "value": element.get("value", ""),
                        "text": element.get("text", {"type": "plain_text", "text": action_id}),
                    }
        raise AssertionError(f"message {message.ts} in {message.channel} has no button {action_id!r}")

    # -- Socket Mode ---------------------------------------------------------------------------

    def _live_sockets(self) -> list[web.WebSocketResponse]:
        """Open sockets not told to disconnect, newest last: the ones envelopes go to."""
        return [ws for ws in self._sockets if not ws.closed and id(ws) not in self._retired_sockets]

    @property
    def socket_connection_count(self) -> int:
        return len(self._live_sockets())

    async def wait_socket_connected(self, *, timeout: float = DEFAULT_WAIT_SECONDS) -> None:
        await self.wait_until(
            lambda: self.socket_connection_count > 0, timeout=timeout, what="a Socket Mode client"
        )

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._socket_tickets:
            return web.json_response(_error("invalid_ticket"), status=401)
        self._socket_tickets.discard(ticket)  # Slack: each URL is good for one connection
        ws = web.WebSocketResponse(autoping=True)  # answers the client's "sdk-ping-pong" pings
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections_total += 1
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": self.socket_connection_count,
                "debug_info": {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._notify()
        try:
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    await self._receive_ack(frame.data)
        finally:
            self._sockets.remove(ws)
            self._retired_sockets.discard(id(ws))
            self._notify()
        return ws

    async def _receive_ack(self, text: str) -> None:
        message = json.loads(text)
        ack = SocketAck(
            envelope_id=message.get("envelope_id", ""), payload=message.get("payload"), at=time.monotonic()
        )
        self.socket_acks.append(ack)
        future = self._pending_acks.pop(ack.envelope_id, None)
        if future is not None and not future.done():
            future.set_result(ack)
        self._notify()

    async def socket_send(
        self,
        envelope_type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool,
        timeout: float = DEFAULT_WAIT_SECONDS,
    ) -> SocketAck:
        """Push one envelope to the connected app and wait (bounded) for its ack."""
        await self.wait_socket_connected(timeout=timeout)
        ws = self._live_sockets()[-1]
        envelope_id = str(uuid.uuid4())
        future: asyncio.Future[SocketAck] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        await ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
            }
        )
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise AssertionError(
                f"fake Slack: envelope {envelope_type} not acked within {timeout}s"
            ) from None
        finally:
            self._pending_acks.pop(envelope_id, None)

    async def socket_send_slash_command(self, command: str, text: str = "", **fields: Any) -> SocketAck:
        """A slash command over Socket Mode; returns the ack (its ``payload`` is the ack's body)."""
        payload = self.slash_command_payload(command, text, **fields)
        return await self.socket_send("slash_commands", payload, accepts_response_payload=True)

    async def socket_send_block_action(
        self, action_id: str, value: str | None = None, **fields: Any
    ) -> SocketAck:
        """A button click over Socket Mode; returns the ack."""
        payload = self.block_actions_payload(action_id, value, **fields)
        return await self.socket_send("interactive", payload, accepts_response_payload=False)

    async def socket_send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does every few hours; later envelopes use the new socket."""
        for ws in self._live_sockets():
            self._retired_sockets.add(id(ws))
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})


def iter_slack_files(blocks: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    """The ``image`` blocks of a message that show an uploaded file (``slack_file``), for previews."""
    for block in blocks or []:
        if block.get("type") == "image" and isinstance(block.get("slack_file"), dict):
            yield block


def iter_actions(blocks: list[dict[str, Any]] | None) -> Iterator[dict[str, Any]]:
    """Every interactive element in a Block Kit message, for asserting on buttons."""
    for block in blocks or []:
        if block.get("type") == "actions":
            yield from block.get("elements", [])
        accessory = block.get("accessory")
        if isinstance(accessory, dict):
            yield accessory


__all__ = [
    "RESPONSE_URL_LIFETIME_SECONDS",
    "RESPONSE_URL_MAX_USES",
    "RESPONSE_URL_STEP",
    "UPLOAD_STEP",
    "ApiCall",
    "FakeSlack",
    "Message",
    "ResponseUrl",
    "SocketAck",
    "Upload",
    "iter_actions",
    "iter_slack_files",
    "sign_request",
]
