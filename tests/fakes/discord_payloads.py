"""The fake Discord's vocabulary: API constants, what it records, and the payloads it sends.

Each payload carries the fields discord.py 2.7 reads with `data[...]` (KeyError otherwise), checked against
its source: `Interaction._from_data` (attachment_size_limit!), `Message.__init__`, `Member.__init__`,
`Guild._from_data`, `Attachment.__init__`, `AppInfo.__init__`, `ConnectionState.parse_ready`.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # bytes; the platform default per file

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7

ADMINISTRATOR = 1 << 3
# view channel, send messages, embed links, attach files, read history, use application commands
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31)
ALL_PERMISSIONS = (1 << 53) - 1

# Interaction types and callback types (Discord's "Receiving and Responding" reference)
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
CHANNEL_MESSAGE_WITH_SOURCE = 4
DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7

UNKNOWN_INTERACTION = {"code": 10062, "message": "Unknown interaction"}
UNKNOWN_MESSAGE = {"code": 10008, "message": "Unknown Message"}
UNKNOWN_CHANNEL = {"code": 10003, "message": "Unknown Channel"}
ALREADY_ACKNOWLEDGED = {"code": 40060, "message": "Interaction has already been acknowledged."}
REQUEST_TOO_LARGE = {"code": 40005, "message": "Request entity too large"}
UNAUTHORIZED = {"code": 0, "message": "401: Unauthorized"}


def iso(moment: datetime.datetime) -> str:
    return moment.isoformat()


def iso_now() -> str:
    return iso(datetime.datetime.now(datetime.UTC))


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response whose Content-Type is exactly `application/json` (no charset), as Discord sends."""
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


# ---------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class FakeUser:
    id: int
    username: str
    is_bot: bool = False

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.username,
            "discriminator": "0",
            "avatar": None,
            "bot": self.is_bot,
            "public_flags": 0,
            "flags": 0,
            "verified": True,
            "mfa_enabled": False,
        }


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    channel_ids: list[int]


@dataclass(frozen=True)
class Part:
    """One multipart field: `payload_json` or `files[n]`."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    json: Any  # the JSON body, or the multipart payload_json
    parts: list[Part]
    arrived_at: float  # time.monotonic()
    status: int | None = None  # what the fake answered

    @property
    def files(self) -> list[Part]:
        return [part for part in self.parts if part.name.startswith("files[")]


RECORD = web.RequestKey("record", RecordedRequest)


@dataclass
class StoredAttachment:
    id: int
    filename: str
    content_type: str | None
    data: bytes
    description: str | None = None


@dataclass
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    created_by: str  # "callback", "followup", "channel" (the route that made it)
    interaction_token: str | None = None
    message_type: int = 0
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    message_reference: dict[str, Any] | None = None  # a reply: the message it answers
    edits: list[dict[str, Any]] = field(default_factory=list)  # every edit's payload, in order
    edited_by: list[str] = field(default_factory=list)  # the route of each edit
    edit_times: list[float] = field(default_factory=list)  # time.monotonic() of each edit
    is_deleted: bool = False
    edited_timestamp: str | None = None

    @property
    def is_ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL_FLAG)

    @property
    def is_loading(self) -> bool:
        return bool(self.flags & LOADING_FLAG)

    @property
    def custom_ids(self) -> list[str]:
        return [component["custom_id"] for component in _walk(self.components) if "custom_id" in component]


def _walk(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for component in components:
        found.append(component)
        found.extend(_walk(component.get("components", [])))
    return found


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    payload: dict[str, Any]
    created_at: float  # on the fake's clock
    dispatched_at: float  # time.monotonic()
    callback: dict[str, Any] | None = None  # the callback body (type, data)
    callback_at: float | None = None  # time.monotonic() when the callback request arrived
    original_message_id: int | None = None
    followup_message_ids: list[int] = field(default_factory=list)

    @property
    def ack_latency_s(self) -> float | None:
        return None if self.callback_at is None else self.callback_at - self.dispatched_at


@dataclass
class GatewayConnection:
    path: str
    query: dict[str, str]
    ops_received: list[int] = field(default_factory=list)
    close_code: int | None = None


@dataclass
class GatewaySession:
    id: str
    user: FakeUser
    events: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, for replay on RESUME


# ---------------------------------------------------------------------------------------------------------
# Payloads


def member_payload(user: FakeUser, permissions: int) -> dict[str, Any]:
    return {
        "user": user.to_payload(),
        "roles": [],
        "nick": None,
        "avatar": None,
        "joined_at": iso_now(),
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
        "communication_disabled_until": None,
        "permissions": str(permissions),
    }


def guild_payload(guild: FakeGuild, channels: list[dict[str, Any]], bot_user: FakeUser) -> dict[str, Any]:
    everyone = {
        "id": str(guild.id),
        "name": "@everyone",
        "permissions": str(MEMBER_PERMISSIONS),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    return {
        "id": str(guild.id),
        "name": guild.name,
        "icon": None,
        "owner_id": str(guild.owner_id),
        "roles": [everyone],
        "channels": channels,
        "members": [member_payload(bot_user, ALL_PERMISSIONS)],
        "member_count": 2,
        "features": [],
        "emojis": [],
        "stickers": [],
        "soundboard_sounds": [],
        "presences": [],
        "voice_states": [],
        "threads": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "unavailable": False,
        "large": False,
        "joined_at": iso_now(),
        "mfa_level": 0,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "system_channel_flags": 0,
        "preferred_locale": "en-US",
        "premium_tier": 0,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
    }


def message_payload(message: StoredMessage, *, base_url: str, application_id: int) -> dict[str, Any]:
    created = datetime.datetime.fromtimestamp(((message.id >> 22) + DISCORD_EPOCH_MS) / 1000, datetime.UTC)
    payload: dict[str, Any] = {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "type": message.message_type,
        "content": message.content,
        "embeds": message.embeds,
        "components": message.components,
        "attachments": [attachment_payload(message, a, base_url=base_url) for a in message.attachments],
        "flags": message.flags,
        "author": message.author.to_payload(),
        "timestamp": iso(created),
        "edited_timestamp": message.edited_timestamp,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "pinned": False,
        "application_id": str(application_id),
    }
    if message.guild_id is not None:
        payload["guild_id"] = str(message.guild_id)
    if message.interaction_token is not None:
        payload["webhook_id"] = str(application_id)
    return payload


def attachment_payload(
    message: StoredMessage, attachment: StoredAttachment, *, base_url: str
) -> dict[str, Any]:
    url = f"{base_url}/attachments/{message.channel_id}/{attachment.id}/{attachment.filename}"
    return {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "description": attachment.description,
        "content_type": attachment.content_type,
        "size": len(attachment.data),
        "url": url,
        "proxy_url": url,
        "height": None,
        "width": None,
        "ephemeral": message.is_ephemeral,
    }


def options_payload(options: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """{name: value} -> option dicts, typed as Discord types them (bool 5, int 4, float 10, str 3, user 6)."""
    if options is None:
        return []
    if isinstance(options, list):
        return options
    typed = []
    for name, value in options.items():
        if isinstance(value, FakeUser):
            typed.append({"name": name, "type": 6, "value": str(value.id)})
            continue
        if isinstance(value, bool):
            option_type = 5
        elif isinstance(value, int):
            option_type = 4
        elif isinstance(value, float):
            option_type = 10
        else:
            option_type = 3
        typed.append({"name": name, "type": option_type, "value": value})
    return typed


def resolved_payload(options: dict[str, Any] | list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """`data.resolved` for the user options among `options`: discord.py builds Members from it."""
    users = (
        [value for value in (options or {}).values() if isinstance(value, FakeUser)]
        if isinstance(options, dict)
        else []
    )
    if not users:
        return None
    members = {}
    for user in users:
        member = member_payload(user, MEMBER_PERMISSIONS)
        del member["user"]  # Discord sends the user under resolved.users only
        members[str(user.id)] = member
    return {"users": {str(user.id): user.to_payload() for user in users}, "members": members}
