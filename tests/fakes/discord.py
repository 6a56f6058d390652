r"""A fake Discord, REST and gateway, on 127.0.0.1, for a real discord.py client.

Point a client at it by patching `discord.http.Route.BASE` to `fake.api_base` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY` to `fake.gateway_url`: discord_client.py does it, and
tests/discord/conftest.py has the fixtures (`fake_discord`, `discord_client_runner`). Records and payload
shapes live in discord_payloads.py.

What it does, in the shape discord.py 2.7 parses (every field checked against its source):
- REST under /api/v10: login, app info, command sync, interaction callbacks, webhook follow-ups and
  `@original` edits (JSON or multipart), channel messages. Every request is recorded (`fake.requests`)
  and every message stored with its attachments' bytes and its edit history (`fake.messages`).
- Gateway at /gateway: HELLO, heartbeat ACK, IDENTIFY -> READY + GUILD_CREATE, RESUME -> replay + RESUMED.
  Tests dispatch slash commands and button clicks with `send_slash_command` and `click_button`.
- Fault switches, per route (a regex searched in the path after /api/v10, optionally after an HTTP method:
  `r"PATCH ^/channels/\d+/messages/\d+$"`): those every fake has (tests/fakes/server.py: `rate_limit`,
  `server_error`, `fail`, `slow`, `clear_faults`), and Discord's own: `upload_limit_bytes` (413/40005),
  `expire_token` and the injectable clock (`advance_clock`) for 10062, `request_reconnect` (op 7),
  `close_gateway` (4000 -> resume), `invalidate_session` (op 9). `wait_until` waits (bounded).

Platform rules it enforces (Discord's "Receiving and Responding" reference): the initial
callback within 3 s of the interaction, tokens valid 15 minutes, one callback per interaction.
Responses carry `Content-Type: application/json` exactly: discord.py's `json_or_text` parses nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import html
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.discord_payloads import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    ALREADY_ACKNOWLEDGED,
    API_PREFIX,
    APPLICATION_COMMAND,
    CHANNEL_MESSAGE_WITH_SOURCE,
    DEFAULT_ATTACHMENT_SIZE_LIMIT,
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
    DEFERRED_UPDATE_MESSAGE,
    DISCORD_EPOCH_MS,
    EPHEMERAL_FLAG,
    LOADING_FLAG,
    MEMBER_PERMISSIONS,
    MESSAGE_COMPONENT,
    RECORD,
    REQUEST_TOO_LARGE,
    UNAUTHORIZED,
    UNKNOWN_CHANNEL,
    UNKNOWN_INTERACTION,
    UNKNOWN_MESSAGE,
    UPDATE_MESSAGE,
    FakeGuild,
    FakeUser,
    GatewayConnection,
    GatewaySession,
    InteractionRecord,
    Part,
    RecordedRequest,
    StoredAttachment,
    StoredMessage,
    guild_payload,
    iso_now,
    json_response,
    member_payload,
    message_payload,
    options_payload,
    resolved_payload,
)
from tests.fakes.server import DEFAULT_WAIT_SECONDS, FakeServer, Fault, consent_page

__all__ = [
    "ADMINISTRATOR",
    "ALL_PERMISSIONS",
    "DEFAULT_ATTACHMENT_SIZE_LIMIT",
    "EPHEMERAL_FLAG",
    "LOADING_FLAG",
    "MEMBER_PERMISSIONS",
    "FakeDiscord",
    "FakeGuild",
    "FakeUser",
    "InteractionRecord",
    "Part",
    "RecordedRequest",
    "StoredAttachment",
    "StoredMessage",
]

INTERACTION_TOKEN_IN_PATH = re.compile(r"^/(?:webhooks/\d+|interactions/\d+)/([^/]+)")

ACK_WINDOW_S = 3.0
TOKEN_LIFETIME_S = 15 * 60.0
HEARTBEAT_INTERVAL_MS = 41_250
# A fault's route: an optional HTTP method, then the path regex.
FAULT_ROUTE = re.compile(r"(?:(GET|POST|PUT|PATCH|DELETE) )?(.*)", re.DOTALL)
# When an API request arrived, on the fake's clock: Discord's 3 s and 15 min windows are judged by it.
ARRIVED_AT = web.RequestKey("arrived_at", float)

# ---------------------------------------------------------------------------------------------------------
# The fake


DM_CHANNEL = 1  # channel type
GUILD_CONTEXT, BOT_DM_CONTEXT = 0, 1  # interaction contexts


# the JSON error codes of the refusals tests ask for by message (`fail(route, error="Missing Access")`)
ERROR_CODES = {"Unknown Channel": 10003, "Missing Access": 50001, "Missing Permissions": 50013}


class FakeDiscord(FakeServer):
    """A Discord for one bot application, with guilds, channels and users made on demand."""

    name = "Discord"
    default_retry_after = 0.05

    def __init__(
        self,
        *,
        token: str = "fake-token",
        clock: Callable[[], float] = time.monotonic,
        heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS,
    ) -> None:
        super().__init__(clock=clock)
        self.token = token
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._ids = itertools.count(1)
        self.bot_user = FakeUser(id=self.snowflake(), username="imagine-bot", is_bot=True)
        self.application_id = self.bot_user.id
        self.owner = FakeUser(id=self.snowflake(), username="owner")
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, dict[str, Any]] = {}
        self.users: dict[int, FakeUser] = {}
        self.guild = self.add_guild("Test Guild")
        self.channel_id = self.guild.channel_ids[0]
        self.user = self.add_user("alice")

        # OAuth2 (Sign in with Discord): the app's secret, who is signed in to Discord in the browser,
        # guild memberships with their permissions, codes and access tokens handed out.
        self.client_secret = "fake-discord-client-secret"
        self.browser_user: FakeUser | None = None
        self.memberships: dict[int, dict[int, int]] = {}  # user id → guild id → permission bits
        self._oauth_codes: dict[str, tuple[int, str]] = {}  # code → (user id, redirect_uri)
        self.user_tokens: dict[str, int] = {}  # access token → user id

        # what the tests read
        self.requests: list[RecordedRequest] = []
        self.messages: dict[int, StoredMessage] = {}
        self.interactions: dict[str, InteractionRecord] = {}  # by token
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.command_sync_count = 0
        self.gateway_connections: list[GatewayConnection] = []
        self.identify_count = 0
        self.resume_count = 0

        self.handler_errors: list[Exception] = []

        # Discord's own fault switches (the shared ones are FakeServer's)
        self.upload_limit_bytes: int | None = None
        self.expired_tokens: set[str] = set()

        self._session: GatewaySession | None = None
        self._sequence = 0
        self._ws: web.WebSocketResponse | None = None  # the identified or resumed connection
        self._sockets: set[web.WebSocketResponse] = set()

    # -- lifecycle ------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_inject_faults], client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/gateway/resume", self._gateway)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._attachment)
        app.router.add_get("/oauth2/authorize", self._authorize_page)
        app.router.add_post("/oauth2/authorize", self._authorize_approve)
        self._add_api_routes(app.router)
        return app

    async def _close_connections(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001)

    @property
    def api_base(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # -- world building -------------------------------------------------------------------------------

    def snowflake(self) -> int:
        """A fresh id whose timestamp part is now, as Discord's are."""
        now_ms = int(time.time() * 1000)
        return ((now_ms - DISCORD_EPOCH_MS) << 22) | (next(self._ids) & 0x3FFFFF)

    def add_user(self, username: str) -> FakeUser:
        user = FakeUser(id=self.snowflake(), username=username)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, *, channel_names: tuple[str, ...] = ("general",)) -> FakeGuild:
        guild = FakeGuild(id=self.snowflake(), name=name, owner_id=self.owner.id, channel_ids=[])
        self.guilds[guild.id] = guild
        for position, channel_name in enumerate(channel_names):
            channel_id = self.snowflake()
            guild.channel_ids.append(channel_id)
            self.channels[channel_id] = {
                "id": str(channel_id),
                "type": 0,
                "guild_id": str(guild.id),
                "name": channel_name,
                "position": position,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "flags": 0,
            }
        return guild

    # -- fault switches (rate_limit, server_error, fail, slow, clear_faults: see FakeServer) ----------------

    def rate_limit(
        self,
        route: str,
        *,
        times: int | None = 1,
        retry_after: float | None = None,
        is_global: bool = False,
    ) -> None:
        """429 for the next ``times`` requests to ``route``, as Discord sends it (``is_global``: the bot's
        global limit rather than a route's)."""
        seconds = self.default_retry_after if retry_after is None else retry_after
        body, headers = self._rate_limit_answer(seconds, is_global=is_global)
        self._arm(Fault(route, times, status=429, body=body, headers=headers))

    def _rate_limit_answer(
        self, retry_after: float, *, is_global: bool = False
    ) -> tuple[dict[str, Any], dict[str, str]]:
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        headers = {
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": str(retry_after),
            "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "global" if is_global else "user",
            # discord.py retries a 429 only when it came from Discord (Via set), not from Cloudflare.
            "Via": "1.1 google",
        }
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        return body, headers

    def _error_body(self, status: int, error: str | None) -> dict[str, Any]:
        """Discord's JSON error: a known message carries its JSON error code, as Discord sends it."""
        return {"code": ERROR_CODES.get(error or "", 0), "message": error or f"{status}: fake outage"}

    @staticmethod
    def _route_matches(route: str, method: str, path: str) -> bool:
        route_method, pattern = FAULT_ROUTE.fullmatch(route).groups()  # type: ignore[union-attr]
        return route_method in (None, method) and re.search(pattern, path) is not None

    def expire_token(self, token: str) -> None:
        """Make an interaction token answer 10062 from now on."""
        self.expired_tokens.add(token)

    def _is_token_live(self, interaction: InteractionRecord, at: float) -> bool:
        too_old = at - interaction.created_at > TOKEN_LIFETIME_S
        return interaction.token not in self.expired_tokens and not too_old

    # -- waiting --------------------------------------------------------------------------------------

    async def wait_for_callback(
        self, interaction: InteractionRecord, *, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> dict[str, Any]:
        return await self.wait_until(
            lambda: interaction.callback,
            timeout=timeout,
            what=f"the callback of interaction {interaction.id}",
        )

    async def wait_for_request(
        self, method: str, pattern: str, *, count: int = 1, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> list[RecordedRequest]:
        """Wait until `count` requests matching `method` and the path regex `pattern` were answered."""
        return await self.wait_until(
            lambda: (
                (found := self.find_requests(method, pattern, answered=True))
                and len(found) >= count
                and found
            ),
            timeout=timeout,
            what=f"{count} answered {method} {pattern}",
        )

    async def wait_for_message(
        self, predicate: Callable[[StoredMessage], bool], *, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> StoredMessage:
        return await self.wait_until(
            lambda: next((m for m in self.messages.values() if predicate(m)), None),
            timeout=timeout,
            what="a matching message",
        )

    def find_requests(self, method: str, pattern: str, *, answered: bool = False) -> list[RecordedRequest]:
        regex = re.compile(pattern)
        return [
            r
            for r in self.requests
            if r.method == method and regex.search(r.path) and (not answered or r.status is not None)
        ]

    def channel_messages(self, channel_id: int | None = None) -> list[StoredMessage]:
        """The live messages of a channel (the default one if None), oldest first."""
        channel_id = channel_id or self.channel_id
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.is_deleted]

    def original_message(self, interaction: InteractionRecord) -> StoredMessage | None:
        if interaction.original_message_id is None:
            return None
        return self.messages[interaction.original_message_id]

    # -- dispatching interactions -----------------------------------------------------------------------

    async def send_slash_command(
        self,
        name: str,
        options: dict[str, Any] | list[dict[str, Any]] | None = None,
        *,
        user: FakeUser | None = None,
        guild: FakeGuild | None = None,
        channel_id: int | None = None,
        member_permissions: int = MEMBER_PERMISSIONS,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT,
        in_dm: bool = False,
    ) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE for `/name`; options as {name: value} or raw option dicts.
        `in_dm`: used in the user's direct messages with the bot (no guild, interaction context 1)."""
        guild = guild or self.guild
        user = user or self.user
        data: dict[str, Any] = {
            "id": str(self._command_id(name, guild.id)),
            "name": name,
            "type": 1,
            "options": options_payload(options),
        }
        if not in_dm:
            data["guild_id"] = str(guild.id)
        if resolved := resolved_payload(options):
            data["resolved"] = resolved
        return await self._dispatch_interaction(
            APPLICATION_COMMAND,
            data,
            user=user,
            guild=None if in_dm else guild,
            channel_id=self.dm_channel(user) if in_dm else channel_id or guild.channel_ids[0],
            member_permissions=member_permissions,
            attachment_size_limit=attachment_size_limit,
        )

    def dm_channel(self, user: FakeUser) -> int:
        """The id of the bot's direct-message channel with `user` (made on first use)."""
        for channel_id, channel in self.channels.items():
            if channel.get("type") == DM_CHANNEL and channel["recipients"][0]["id"] == str(user.id):
                return channel_id
        channel_id = self.snowflake()
        self.channels[channel_id] = {
            "id": str(channel_id),
            "type": DM_CHANNEL,
            "recipients": [user.to_payload()],
        }
        return channel_id

    async def click_button(
        self,
        message_id: int,
        custom_id: str,
        *,
        user: FakeUser | None = None,
        member_permissions: int = MEMBER_PERMISSIONS,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT,
    ) -> InteractionRecord:
        """Dispatch the component interaction a click on `custom_id` under the stored message makes."""
        message = self.messages[message_id]
        if custom_id not in message.custom_ids:
            raise AssertionError(f"message {message_id} has no component {custom_id!r}: {message.custom_ids}")
        guild = self.guilds[message.guild_id] if message.guild_id else self.guild
        return await self._dispatch_interaction(
            MESSAGE_COMPONENT,
            {"custom_id": custom_id, "component_type": 2},
            user=user or self.user,
            guild=guild,
            channel_id=message.channel_id,
            member_permissions=member_permissions,
            attachment_size_limit=attachment_size_limit,
            message=self._message_payload(message),
        )

    def _command_id(self, name: str, guild_id: int) -> int:
        for command in [*self.guild_commands.get(guild_id, []), *self.global_commands]:
            if command["name"] == name:
                return int(command["id"])
        return self.snowflake()

    async def _dispatch_interaction(
        self,
        interaction_type: int,
        data: dict[str, Any],
        *,
        user: FakeUser,
        guild: FakeGuild | None,
        channel_id: int,
        member_permissions: int,
        attachment_size_limit: int,
        message: dict[str, Any] | None = None,
    ) -> InteractionRecord:
        interaction_id = self.snowflake()
        token = f"fake-interaction-token-{interaction_id}"
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": self.channels[channel_id],
            "app_permissions": str(ALL_PERMISSIONS),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": attachment_size_limit,
            "data": data,
        }
        if guild is not None:
            payload |= {
                "guild_id": str(guild.id),
                "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "member": member_payload(user, member_permissions),
                "authorizing_integration_owners": {"0": str(guild.id)},
                "context": GUILD_CONTEXT,
            }
        else:  # a direct message with the bot: the user, no member
            payload |= {
                "user": user.to_payload(),
                "authorizing_integration_owners": {"0": str(self.guild.id)},
                "context": BOT_DM_CONTEXT,
            }
        if message is not None:
            payload["message"] = message
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            type=interaction_type,
            payload=payload,
            created_at=self.now(),
            dispatched_at=time.monotonic(),
        )
        self.interactions[token] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    # -- gateway --------------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH (op 0) to the client; kept for replay if it is reconnecting."""
        if self._session is None:
            raise RuntimeError("no gateway session: the client has not identified yet")
        self._sequence += 1
        frame = {"op": 0, "t": event, "s": self._sequence, "d": data}
        self._session.events.append(frame)
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionResetError):  # closing: the frame is replayed on RESUME
                await self._ws.send_str(json.dumps(frame))
        self._notify()

    async def request_reconnect(self) -> None:
        """op 7 RECONNECT: the client closes and RESUMEs on resume_gateway_url."""
        await self._send_op(7, None)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """op 9 INVALID_SESSION: a non-resumable one makes the client IDENTIFY again (after 5 s in 2.7)."""
        if not resumable:
            self._session = None
        await self._send_op(9, resumable)

    async def close_gateway(self, code: int = 4000) -> None:
        """Close the client's socket with `code` (4000 -> the client resumes; 4004 -> it gives up)."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            await ws.close(code=code)

    async def _send_op(self, op: int, data: Any) -> None:
        if self._ws is None:
            raise RuntimeError("no gateway connection")
        await self._ws.send_str(json.dumps({"op": op, "d": data, "s": None, "t": None}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        connection = GatewayConnection(path=request.path, query=dict(request.query))
        self.gateway_connections.append(connection)
        self._notify()
        try:
            await ws.send_str(
                json.dumps({"op": 10, "d": {"heartbeat_interval": self._heartbeat_interval_ms}})
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                connection.ops_received.append(frame["op"])
                await self._on_gateway_frame(ws, frame)
        finally:
            self._sockets.discard(ws)
            connection.close_code = ws.close_code
            if self._ws is ws:
                self._ws = None
            self._notify()
        return ws

    async def _on_gateway_frame(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        op, data = frame["op"], frame.get("d")
        if op == 1:  # HEARTBEAT
            await ws.send_str(json.dumps({"op": 11, "d": None}))
        elif op == 2:  # IDENTIFY
            await self._identify(ws, data)
        elif op == 6:  # RESUME
            await self._resume(ws, data)
        # op 3 presence, op 4 voice, op 8 request members: accepted and ignored

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        self.identify_count += 1
        self._session = GatewaySession(id=f"fake-session-{self.snowflake()}", user=self.bot_user)
        self._ws = ws
        ready = {
            "v": 10,
            "user": self.bot_user.to_payload(),
            "guilds": [{"id": str(guild_id), "unavailable": True} for guild_id in self.guilds],
            "session_id": self._session.id,
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway/resume",
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if "shard" in data:  # AutoShardedClient identifies with [shard_id, shard_count] and reads it back
            ready["shard"] = data["shard"]
        await self.dispatch("READY", ready)
        for guild in self.guilds.values():
            await self.dispatch("GUILD_CREATE", self._guild_payload(guild))

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        session = self._session
        if session is None or data.get("session_id") != session.id or data.get("token") != self.token:
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return
        self.resume_count += 1
        self._ws = ws
        last_seen = data.get("seq") or 0
        for frame in session.events:
            if frame["s"] > last_seen:
                await ws.send_str(json.dumps(frame))
        await self.dispatch("RESUMED", {})

    # -- REST: recording and faults ------------------------------------------------------------------------

    @web.middleware
    async def _record_and_inject_faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        request[ARRIVED_AT] = self.now()
        record = await self._record(request)
        request[RECORD] = record
        try:
            response = await self._fault_for(record) or await handler(request)
            record.status = response.status
        except web.HTTPException:
            raise
        except Exception as exc:
            self.handler_errors.append(exc)  # a bug in the fake: the fixture fails the test with it
            raise
        finally:
            self._notify()
        return response

    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        parts: list[Part] = []
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                assert isinstance(part, BodyPartReader), "discord.py sends flat multipart bodies"
                content_type = part.headers.get("Content-Type")
                parts.append(Part(part.name or "", part.filename, content_type, bytes(await part.read())))
            payload_part = next((p for p in parts if p.name == "payload_json"), None)
            body = json.loads(payload_part.data) if payload_part else None
        elif request.content_type == "application/x-www-form-urlencoded":
            body = dict(await request.post())  # the OAuth2 token endpoint's form
        elif raw := await request.read():
            body = json.loads(raw)
        record = RecordedRequest(
            method=request.method,
            path=request.path.removeprefix(API_PREFIX),
            query=dict(request.query),
            json=body,
            parts=parts,
            arrived_at=time.monotonic(),
        )
        self.requests.append(record)
        return record

    async def _fault_for(self, record: RecordedRequest) -> web.Response | None:
        """The answer a fault or Discord's upload limit gives instead of the route (after a `slow` delay)."""
        fault = await self._due_fault(lambda f: self._route_matches(f.route, record.method, record.path))
        if fault is not None and fault.status is not None:
            return json_response(fault.body, status=fault.status, headers=fault.headers)
        limit = self._upload_limit(record.path)
        if limit is not None and any(len(part.data) > limit for part in record.files):
            return json_response(REQUEST_TOO_LARGE, status=413)
        return None

    def _upload_limit(self, path: str) -> int | None:
        """`upload_limit_bytes`, or for an interaction's routes its `attachment_size_limit` if smaller."""
        limits = [] if self.upload_limit_bytes is None else [self.upload_limit_bytes]
        if (match := INTERACTION_TOKEN_IN_PATH.match(path)) and (
            interaction := self.interactions.get(match[1])
        ):
            limits.append(interaction.payload["attachment_size_limit"])
        return min(limits, default=None)

    # -- REST: routes -----------------------------------------------------------------------------------

    def _add_api_routes(self, router: web.UrlDispatcher) -> None:
        api = API_PREFIX
        webhook = api + "/webhooks/{application_id}/{token}"
        router.add_get(api + "/users/@me", self._users_me)
        router.add_get(api + "/users/@me/guilds", self._users_me_guilds)
        router.add_post(api + "/oauth2/token", self._oauth_token)
        router.add_get(api + "/oauth2/applications/@me", self._application_info)
        router.add_get(api + "/gateway", self._gateway_info)
        router.add_get(api + "/gateway/bot", self._gateway_info)
        router.add_put(api + "/applications/{application_id}/commands", self._put_commands)
        router.add_get(api + "/applications/{application_id}/commands", self._get_commands)
        router.add_put(api + "/applications/{application_id}/guilds/{guild_id}/commands", self._put_commands)
        router.add_get(api + "/applications/{application_id}/guilds/{guild_id}/commands", self._get_commands)
        router.add_post(api + "/interactions/{interaction_id}/{token}/callback", self._callback)
        router.add_post(webhook, self._followup)
        router.add_get(webhook + "/messages/{message_id}", self._get_webhook_message)
        router.add_patch(webhook + "/messages/{message_id}", self._edit_webhook_message)
        router.add_delete(webhook + "/messages/{message_id}", self._delete_webhook_message)
        router.add_get(api + "/channels/{channel_id}", self._get_channel)
        router.add_post(api + "/channels/{channel_id}/messages", self._create_channel_message)
        router.add_get(api + "/channels/{channel_id}/messages/{message_id}", self._get_channel_message)
        router.add_patch(api + "/channels/{channel_id}/messages/{message_id}", self._edit_channel_message)
        router.add_route("*", api + "/{tail:.*}", self._unknown_route)

    def _is_bot_auth(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _users_me(self, request: web.Request) -> web.Response:
        user = self._bearer_user(request)
        if user is not None:
            return json_response(user.to_payload())
        if not self._is_bot_auth(request):
            return json_response(UNAUTHORIZED, status=401)
        return json_response(self.bot_user.to_payload())

    # -- OAuth2: Sign in with Discord -----------------------------------------------------------------

    def sign_in_browser_as(self, user: FakeUser) -> None:
        """The person at the browser is signed in to Discord as `user` (the authorize page shows them)."""
        self.browser_user = user

    def join(self, user: FakeUser, guild: FakeGuild, *, permissions: int = 0) -> None:
        """`user` is a member of `guild` with these permission bits (0x20: Manage Server)."""
        self.memberships.setdefault(user.id, {})[guild.id] = permissions

    def _bearer_user(self, request: web.Request) -> FakeUser | None:
        header = request.headers.get("Authorization", "")
        user_id = (
            self.user_tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        )
        return self.users.get(user_id) if user_id is not None else None

    async def _authorize_page(self, request: web.Request) -> web.Response:
        """Discord's consent screen: the app, the scopes, an Authorize button."""
        query = request.query
        if query.get("client_id") != str(self.application_id) or query.get("response_type") != "code":
            return web.Response(status=400, text="Invalid OAuth2 request")
        if self.browser_user is None:
            return web.Response(status=401, text="Log in to Discord first")
        body = (
            f"<h1>{html.escape(self.bot_user.username)} wants to access your account</h1>"
            f"<p>Signed in as {html.escape(self.browser_user.username)}. "
            f"Scopes: {html.escape(query.get('scope', ''))}</p>"
        )
        return consent_page(
            "Discord | Authorize", body, action="/oauth2/authorize", button="Authorize", query=query
        )

    async def _authorize_approve(self, request: web.Request) -> web.Response:
        form = await request.post()
        redirect_uri, state = str(form.get("redirect_uri", "")), str(form.get("state", ""))
        if self.browser_user is None or not redirect_uri:
            return web.Response(status=400, text="Invalid OAuth2 request")
        code = uuid.uuid4().hex
        self._oauth_codes[code] = (self.browser_user.id, redirect_uri)
        raise web.HTTPFound(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    async def _oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, client_secret = (
                base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
            )
        if (client_id, client_secret) != (str(self.application_id), self.client_secret):
            return json_response({"error": "invalid_client"}, status=401)
        granted = self._oauth_codes.pop(str(form.get("code", "")), None)  # Discord: a code works once
        if form.get("grant_type") != "authorization_code" or granted is None:
            return json_response({"error": "invalid_grant"}, status=400)
        user_id, redirect_uri = granted
        if str(form.get("redirect_uri", "")) != redirect_uri:
            return json_response({"error": "invalid_grant", "error_description": "redirect_uri"}, status=400)
        token = uuid.uuid4().hex
        self.user_tokens[token] = user_id
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 604800, "scope": "identify guilds"}
        )

    async def _users_me_guilds(self, request: web.Request) -> web.Response:
        user = self._bearer_user(request)
        if user is not None:
            member_of = self.memberships.get(user.id, {})
        elif self._is_bot_auth(request):
            member_of = {guild_id: 0 for guild_id in self.guilds}  # the bot is in every fake guild
        else:
            return json_response(UNAUTHORIZED, status=401)
        return json_response(
            [
                {
                    "id": str(guild_id),
                    "name": self.guilds[guild_id].name,
                    "icon": None,
                    "owner": self.guilds[guild_id].owner_id == (user.id if user else self.bot_user.id),
                    "permissions": str(permissions),
                    "features": [],
                }
                for guild_id, permissions in member_of.items()
            ]
        )

    async def _application_info(self, request: web.Request) -> web.Response:
        if not self._is_bot_auth(request):
            return json_response(UNAUTHORIZED, status=401)
        return json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_user.username,
                "description": "",
                "icon": None,
                "rpc_origins": [],
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": self.owner.to_payload(),
                "verify_key": "0" * 64,
                "flags": 0,
                "bot": self.bot_user.to_payload(),
                "interactions_endpoint_url": None,
            }
        )

    async def _gateway_info(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _put_commands(self, request: web.Request) -> web.Response:
        if not self._is_bot_auth(request):
            return json_response(UNAUTHORIZED, status=401)
        guild_id = request.match_info.get("guild_id")
        stored = [self._stored_command(definition, guild_id) for definition in request[RECORD].json]
        if guild_id is None:
            self.global_commands = stored
        else:
            self.guild_commands[int(guild_id)] = stored
        self.command_sync_count += 1
        return json_response(stored)

    def _stored_command(self, definition: dict[str, Any], guild_id: str | None) -> dict[str, Any]:
        command = {
            "type": 1,
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **definition,
            "id": str(self.snowflake()),
            "application_id": str(self.application_id),
            "version": str(self.snowflake()),
        }
        if command["default_member_permissions"] is not None:  # sent as an int, answered as a string
            command["default_member_permissions"] = str(command["default_member_permissions"])
        if guild_id is not None:
            command["guild_id"] = guild_id
        return command

    async def _get_commands(self, request: web.Request) -> web.Response:
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return json_response(self.global_commands)
        return json_response(self.guild_commands.get(int(guild_id), []))

    async def _unknown_route(self, request: web.Request) -> web.Response:
        return json_response(
            {"code": 0, "message": f"fake Discord has no route {request.method} {request.path}"}, status=404
        )

    # -- REST: interactions and webhooks -------------------------------------------------------------------

    def _live_interaction(self, request: web.Request) -> InteractionRecord | None:
        """The interaction of the token in the request's path, if that token was live when it arrived."""
        interaction = self.interactions.get(request.match_info["token"])
        if interaction is None or not self._is_token_live(interaction, request[ARRIVED_AT]):
            return None
        return interaction

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self._live_interaction(request)
        if interaction is None or str(interaction.id) != request.match_info["interaction_id"]:
            return json_response(UNKNOWN_INTERACTION, status=404)
        if interaction.callback is not None:
            return json_response(ALREADY_ACKNOWLEDGED, status=400)
        if request[ARRIVED_AT] - interaction.created_at > ACK_WINDOW_S:
            self.expire_token(interaction.token)  # Discord invalidates a token not acked within 3 s
            return json_response(UNKNOWN_INTERACTION, status=404)
        record: RecordedRequest = request[RECORD]
        body = record.json or {}
        interaction.callback = body
        interaction.callback_at = record.arrived_at
        callback_type = body["type"]
        data = body.get("data") or {}
        message = self._apply_callback(interaction, callback_type, data, record)
        answer: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": callback_type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
                "response_message_ephemeral": bool(message and message.is_ephemeral),
            },
            "resource": {"type": callback_type},
        }
        if message is not None and callback_type in (4, 5, 7):
            answer["resource"]["message"] = self._message_payload(message)
        if "with_response" not in record.query:
            return web.Response(status=204)
        return json_response(answer)

    def _apply_callback(
        self,
        interaction: InteractionRecord,
        callback_type: int,
        data: dict[str, Any],
        record: RecordedRequest,
    ) -> StoredMessage | None:
        payload = interaction.payload
        if callback_type in (CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE):
            message = self._new_message(
                channel_id=int(payload["channel_id"]),
                created_by="callback",
                interaction_token=interaction.token,
                message_type=20 if interaction.type == APPLICATION_COMMAND else 19,
            )
            flags = data.get("flags", 0) & EPHEMERAL_FLAG
            if callback_type == DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE:
                message.flags = flags | LOADING_FLAG
            else:
                self._write_message(message, data, record.parts)
                message.flags = flags
            interaction.original_message_id = message.id
            return message
        if callback_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) and "message" in payload:
            message = self.messages[int(payload["message"]["id"])]
            interaction.original_message_id = message.id
            if callback_type == UPDATE_MESSAGE:
                self._edit_message(message, data, record.parts, edited_by="callback")
            return message
        return None

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._live_interaction(request)
        if interaction is None:
            return json_response(UNKNOWN_INTERACTION, status=404)
        record: RecordedRequest = request[RECORD]
        data = record.json or {}
        original = self.original_message(interaction)
        if original is not None and original.is_loading and not original.is_deleted:
            # After a type-5 defer the first follow-up edits the loading message (deprecated behaviour);
            # once the bot deleted that message, a follow-up is a new message again.
            self._edit_message(original, data, record.parts, edited_by="followup")
            original.flags &= ~LOADING_FLAG
            message = original
        else:
            message = self._new_message(
                channel_id=int(interaction.payload["channel_id"]),
                created_by="followup",
                interaction_token=interaction.token,
            )
            self._write_message(message, data, record.parts)
            message.flags = data.get("flags", 0) & EPHEMERAL_FLAG
            interaction.followup_message_ids.append(message.id)
        if record.query.get("wait") in ("1", "true", "True"):
            return json_response(self._message_payload(message))
        return web.Response(status=204)

    def _webhook_message(self, request: web.Request) -> tuple[StoredMessage | None, web.Response | None]:
        interaction = self._live_interaction(request)
        if interaction is None:
            return None, json_response(UNKNOWN_INTERACTION, status=404)
        raw_id = request.match_info["message_id"]
        message_id = interaction.original_message_id if raw_id == "@original" else int(raw_id)
        message = self.messages.get(message_id) if message_id is not None else None
        # @original of a button's interaction is the message the button is on (made by another token)
        is_this_interactions = message is not None and (
            message.id == interaction.original_message_id or message.interaction_token == interaction.token
        )
        if message is None or message.is_deleted or not is_this_interactions:
            return None, json_response(UNKNOWN_MESSAGE, status=404)
        return message, None

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        message, error = self._webhook_message(request)
        return error or json_response(self._message_payload(message))  # type: ignore[arg-type]

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        message, error = self._webhook_message(request)
        if error is not None:
            return error
        assert message is not None
        record: RecordedRequest = request[RECORD]
        self._edit_message(message, record.json or {}, record.parts, edited_by="webhook")
        message.flags &= ~LOADING_FLAG
        return json_response(self._message_payload(message))

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        message, error = self._webhook_message(request)
        if error is not None:
            return error
        assert message is not None
        message.is_deleted = True
        return web.Response(status=204)

    # -- REST: channels -------------------------------------------------------------------------------

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            return json_response(UNKNOWN_CHANNEL, status=404)
        return json_response(channel)

    async def _create_channel_message(self, request: web.Request) -> web.Response:
        if not self._is_bot_auth(request):
            return json_response(UNAUTHORIZED, status=401)
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.channels:
            return json_response(UNKNOWN_CHANNEL, status=404)
        record: RecordedRequest = request[RECORD]
        message = self._new_message(channel_id=channel_id, created_by="channel")
        self._write_message(message, record.json or {}, record.parts)
        return json_response(self._message_payload(message))

    def _channel_message(self, request: web.Request) -> StoredMessage | None:
        message = self.messages.get(int(request.match_info["message_id"]))
        if (
            message is None
            or message.is_deleted
            or message.channel_id != int(request.match_info["channel_id"])
        ):
            return None
        return message

    async def _get_channel_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        if message is None:
            return json_response(UNKNOWN_MESSAGE, status=404)
        return json_response(self._message_payload(message))

    async def _edit_channel_message(self, request: web.Request) -> web.Response:
        if not self._is_bot_auth(request):
            return json_response(UNAUTHORIZED, status=401)
        message = self._channel_message(request)
        if message is None:
            return json_response(UNKNOWN_MESSAGE, status=404)
        record: RecordedRequest = request[RECORD]
        self._edit_message(message, record.json or {}, record.parts, edited_by="channel")
        return json_response(self._message_payload(message))

    async def _attachment(self, request: web.Request) -> web.Response:
        attachment_id = int(request.match_info["attachment_id"])
        for message in self.messages.values():
            for attachment in message.attachments:
                if attachment.id == attachment_id:
                    return web.Response(body=attachment.data, content_type=attachment.content_type)
        raise web.HTTPNotFound()

    # -- messages -------------------------------------------------------------------------------------

    def _new_message(
        self,
        *,
        channel_id: int,
        created_by: str,
        interaction_token: str | None = None,
        message_type: int = 0,
    ) -> StoredMessage:
        guild_id = self.channels[channel_id].get("guild_id")
        message = StoredMessage(
            id=self.snowflake(),
            channel_id=channel_id,
            guild_id=int(guild_id) if guild_id else None,
            author=self.bot_user,
            created_by=created_by,
            interaction_token=interaction_token,
            message_type=message_type,
        )
        self.messages[message.id] = message
        return message

    def _write_message(self, message: StoredMessage, data: dict[str, Any], parts: list[Part]) -> None:
        """Set the fields a create or edit payload carries; attachments follow Discord's id rules."""
        for key in ("content", "embeds", "components", "message_reference"):
            if key in data and data[key] is not None:
                setattr(message, key, data[key])
        if "flags" in data and data["flags"] is not None:
            message.flags = (message.flags & (EPHEMERAL_FLAG | LOADING_FLAG)) | (
                data["flags"] & ~EPHEMERAL_FLAG
            )
        files = {part.name: part for part in parts if part.name.startswith("files[")}
        if "attachments" in data and data["attachments"] is not None:
            message.attachments = self._resolve_attachments(message, data["attachments"], files)
        elif files:
            message.attachments = [*message.attachments, *(self._new_attachment(p) for p in files.values())]

    def _resolve_attachments(
        self, message: StoredMessage, wanted: list[dict[str, Any]], files: dict[str, Part]
    ) -> list[StoredAttachment]:
        existing = {str(a.id): a for a in message.attachments}
        resolved = []
        for entry in wanted:
            key = str(entry["id"])
            if key in existing:
                resolved.append(existing[key])
            elif (part := files.get(f"files[{key}]")) is not None:
                resolved.append(self._new_attachment(part, entry.get("filename"), entry.get("description")))
        return resolved

    def _new_attachment(
        self, part: Part, filename: str | None = None, description: str | None = None
    ) -> StoredAttachment:
        return StoredAttachment(
            id=self.snowflake(),
            filename=filename or part.filename or "file",
            content_type=part.content_type,
            data=part.data,
            description=description,
        )

    def _edit_message(
        self, message: StoredMessage, data: dict[str, Any], parts: list[Part], *, edited_by: str
    ) -> None:
        self._write_message(message, data, parts)
        message.edits.append(data)
        message.edited_by.append(edited_by)
        message.edit_times.append(time.monotonic())
        message.edited_timestamp = iso_now()

    def _message_payload(self, message: StoredMessage) -> dict[str, Any]:
        return message_payload(message, base_url=self.base_url, application_id=self.application_id)

    def _guild_payload(self, guild: FakeGuild) -> dict[str, Any]:
        return guild_payload(guild, [self.channels[cid] for cid in guild.channel_ids], self.bot_user)
