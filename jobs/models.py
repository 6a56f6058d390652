"""Frozen domain objects: what frontends and generators get back from the queue (never a row or a session)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from jobs.options import JobOptions

# DALL·E mini draws a 16×16 grid of codes from a 16384-entry VQGAN codebook per image.
IMAGE_TOKEN_COUNT = 256
GRID_INDEX = -1  # images.index of the grid made of all a job's images
MAX_JOB_ID = 2**63 - 1  # jobs.id is a signed 64-bit integer
EXPIRED_PROMPT = ""  # what a prompt forgotten by retention reads as (jobs/retention.py)


class Status(enum.StrEnum):
    QUEUED = "queued"  # waiting for a generator to claim it (also after a retry or a lost lease)
    RUNNING = "running"  # a generator holds its lease and is rendering it
    DONE = "done"  # images are stored; delivery may still be pending
    FAILED = "failed"  # gave up: `error` says why in words the user sees
    CANCELLED = "cancelled"  # the requester or an admin cancelled it


ACTIVE = (Status.QUEUED, Status.RUNNING)  # a generator still has work to do
FINAL = (Status.DONE, Status.FAILED, Status.CANCELLED)  # over; what remains is delivery


class Delivery(enum.StrEnum):
    PENDING = "pending"  # the result (grid or failure) has not reached the chat yet
    DELIVERED = "delivered"  # posted; message refs recorded
    UNDELIVERABLE = "undeliverable"  # gave up posting after the delivery deadline; `delivery_error` says why


class Kind(enum.StrEnum):
    IMAGINE = "imagine"  # a new prompt
    REROLL = "reroll"  # the parent's prompt and options with a fresh seed
    VARIATION = "variation"  # new images that start from one of the parent's images' tokens
    PICK = "pick"  # one of the parent's images posted on its own; no rendering
    UPSCALE = "upscale"  # one image of the parent 4× larger (super-resolution), as a reply to the parent


class Platform(enum.StrEnum):
    DISCORD = "discord"
    SLACK = "slack"
    CLI = "cli"
    WEB = "web"


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def require_aware(value: datetime, name: str) -> datetime: ...
@overload
def require_aware(value: None, name: str) -> None: ...
def require_aware(value: datetime | None, name: str) -> datetime | None:
    """Naive datetimes are refused: every time in the queue is timezone-aware UTC."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC) if value is not None else None


@dataclass(frozen=True, slots=True)
class MessageRefs:
    """What a poster needs to edit or post the result later, after a restart.

    Discord: the interaction token lives 15 minutes (`interaction_created_at` says when it dies);
    Slack: `response_url` and the placeholder's `ts`. Anything else goes in `extra` (JSON).
    """

    interaction_token: str | None = None
    interaction_created_at: datetime | None = None
    response_url: str | None = None
    placeholder_message_id: str | None = None
    final_message_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnqueueRequest:
    """One /imagine (or button press) from a frontend."""

    platform: str
    user_id: str
    prompt: str
    user_name: str = ""
    guild_id: str = ""  # Discord guild / Slack workspace ("" for DMs and the CLI)
    channel_id: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    kind: Kind = Kind.IMAGINE
    parent_job_id: int | None = None
    image_index: int | None = None  # which of the parent's images a variation/pick starts from
    refs: MessageRefs = field(default_factory=MessageRefs)


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: Kind
    parent_job_id: int | None
    image_index: int | None
    platform: str
    guild_id: str
    channel_id: str
    user_id: str
    user_name: str
    prompt: str
    prompt_normalized: str
    options: JobOptions
    status: Status
    fair_tag: float
    attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    progress: float
    cancel_requested: bool
    error: str | None  # user-facing reason
    error_detail: str | None  # for admins and logs
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    gpu_seconds: float | None
    delivery: Delivery
    delivery_attempts: int
    delivery_failures: int
    delivery_next_try_at: datetime | None
    delivery_error: str | None
    refs: MessageRefs
    candidates: int | None = None  # drawn per shown image; None: the generator's default (until done)
    quota_images: int = 0  # what it counts against the daily quota

    @property
    def images(self) -> int:
        return self.options.images

    @property
    def wait_time(self) -> timedelta | None:
        return self.started_at - self.created_at if self.started_at else None

    @property
    def render_time(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at and self.started_at else None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """Build from a `jobs` row (a SQLAlchemy Row or mapping)."""
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(
            id=m["id"],
            kind=Kind(m["kind"]),
            parent_job_id=m["parent_job_id"],
            image_index=m["image_index"],
            platform=m["platform"],
            guild_id=m["guild_id"],
            channel_id=m["channel_id"],
            user_id=m["user_id"],
            user_name=m["user_name"],
            prompt=m["prompt"],
            prompt_normalized=m["prompt_normalized"],
            options=JobOptions.from_row(m),
            status=Status(m["status"]),
            fair_tag=float(m["fair_tag"]),
            attempts=m["attempts"],
            run_after=m["run_after"],
            lease_owner=m["lease_owner"],
            lease_expires_at=m["lease_expires_at"],
            progress=float(m["progress"]),
            cancel_requested=bool(m["cancel_requested"]),
            error=m["error"],
            error_detail=m["error_detail"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            gpu_seconds=None if m["gpu_seconds"] is None else float(m["gpu_seconds"]),
            delivery=Delivery(m["delivery"]),
            delivery_attempts=m["delivery_attempts"],
            delivery_failures=m["delivery_failures"],
            delivery_next_try_at=m["delivery_next_try_at"],
            delivery_error=m["delivery_error"],
            refs=MessageRefs(
                interaction_token=m["interaction_token"],
                interaction_created_at=m["interaction_created_at"],
                response_url=m["response_url"],
                placeholder_message_id=m["placeholder_message_id"],
                final_message_id=m["final_message_id"],
                extra=dict(m["platform_refs"] or {}),
            ),
            candidates=m["candidates"],
            quota_images=m["quota_images"],
        )


@dataclass(frozen=True, slots=True)
class Enqueued:
    job: Job
    position: int  # 1 = next to be claimed
    eta: timedelta | None  # None until the queue has seen recent renders


@dataclass(frozen=True, slots=True)
class StoredImage:
    job_id: int
    index: int  # 0..images-1, or GRID_INDEX for the grid
    png: bytes
    tokens: bytes | None  # IMAGE_TOKEN_COUNT codes as little-endian uint16 (None for the grid)
    score: float | None = None  # CLIP similarity with the prompt (None: not ranked)


@dataclass(frozen=True, slots=True)
class RenderedImage:
    """What a worker hands to `finish` per image (in the grid's order: best score first)."""

    png: bytes
    tokens: bytes | None  # None for an upscale's picture (it has no codes)
    score: float | None = None


@dataclass(frozen=True, slots=True)
class SpaceSettings:
    """Per Discord guild / Slack workspace settings; None means "use the global default"."""

    platform: str
    guild_id: str
    allowed_channels: tuple[str, ...] = ()  # empty: every channel
    max_running_per_user: int | None = None
    max_queued_per_user: int | None = None
    daily_quota_images: int | None = None
    candidates_per_image: int | None = None  # candidates drawn per shown image (1: rank only)
    blocked_words: tuple[str, ...] = ()
    admin_role_ids: tuple[str, ...] = ()
    admin_user_ids: tuple[str, ...] = ()

    def is_admin(self, user_id: str, role_ids: Iterable[str] = ()) -> bool:
        """Whether this user (with these platform roles) is one of this guild's /imagine admins.
        Platform-level admins (Discord "Manage Server", Slack workspace admins) are the frontend's call."""
        return user_id in self.admin_user_ids or not set(role_ids).isdisjoint(self.admin_role_ids)

    EDITABLE = (
        "allowed_channels",
        "max_running_per_user",
        "max_queued_per_user",
        "daily_quota_images",
        "candidates_per_image",
        "blocked_words",
        "admin_role_ids",
        "admin_user_ids",
    )


@dataclass(frozen=True, slots=True)
class Ban:
    platform: str
    guild_id: str  # "" bans on every guild/workspace of the platform
    user_id: str
    reason: str
    banned_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    worker_id: str
    host: str
    pid: int
    device: str
    model: str
    batch_images: int
    jobs_done: int
    images_done: int
    started_at: datetime
    last_seen_at: datetime
    heartbeat_seconds: float
    images_per_second: float | None

    def is_alive(self, now: datetime) -> bool:
        """Alive while its last heartbeat is younger than two of its own intervals (one missed beat is a
        busy moment, two a dead process) plus a second of clock skew."""
        return (now - self.last_seen_at).total_seconds() < 2 * self.heartbeat_seconds + 1.0


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which jobs a usage report counts; None means any. `since` inclusive, `until` exclusive, on
    created_at."""

    platform: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    user_id: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class JobSearch:
    """History filters; empty strings and None mean "any"."""

    text: str = ""  # case-insensitive substring of the prompt
    user: str = ""  # user id or display name, exact (case-insensitive for names)
    status: str = ""
    platform: str = ""
    guild_id: str = ""
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    limit: int = 50
    offset: int = 0
