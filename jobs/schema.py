"""The tables (SQLAlchemy Core). Migrations in `migrations/` must produce exactly this (a test checks).

Times are timezone-aware UTC everywhere: `UTCDateTime` refuses naive values on the way in and marks
SQLite's naive values as UTC on the way out. Every time compared in SQL is bound from Python
(`now` is an argument of the queue's operations), so SQLite's text timestamps compare correctly.
"""

from __future__ import annotations

from datetime import UTC, datetime

from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets a bigint identity.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the queue stores UTC, pass an aware datetime")
        value = value.astimezone(UTC)
        # SQLite keeps text; drop the offset so every stored value has the same, comparable shape.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # what kind of request: a reroll/variation/pick points at the job (and image) it came from
    Column("kind", String(16), nullable=False),
    Column("parent_job_id", BigId, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    Column("image_index", Integer, nullable=True),
    # where it came from and who asked
    Column("platform", String(16), nullable=False),
    Column("guild_id", String(64), nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(128), nullable=False),
    Column("prompt", Text, nullable=False),
    Column("prompt_normalized", Text, nullable=False),
    # options
    Column("images", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("guidance_scale", Float, nullable=False),
    Column("top_k", Integer, nullable=True),  # NULL: off (sample among every code)
    Column("top_p", Float, nullable=True),  # NULL: off (no nucleus cut)
    Column("temperature", Float, nullable=False),
    Column("model", String(128), nullable=False),
    # candidates drawn per shown image (CLIP keeps the best); NULL: the generator's default for its device,
    # replaced by what it drew when the job finishes
    Column("candidates", Integer, nullable=True),
    # what the job counts against the daily quota: images drawn (images × candidates), an upscale's cost,
    # 0 for a pick
    Column("quota_images", Integer, nullable=False),
    # the queue
    Column("status", String(16), nullable=False),
    Column("fair_tag", Float, nullable=False),  # start-time fair queueing tag; claim takes the lowest
    Column("attempts", Integer, nullable=False),  # renders started that did not finish
    Column("run_after", UTCDateTime, nullable=False),  # retry backoff: not claimable before this
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("progress", Float, nullable=False),  # 0..1 while rendering
    Column("cancel_requested", Boolean, nullable=False),
    Column("error", Text, nullable=True),  # shown to the user
    Column("error_detail", Text, nullable=True),  # for admins: exception, worker, traceback tail
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),  # first claim: wait time = started - created
    Column("finished_at", UTCDateTime, nullable=True),
    Column("gpu_seconds", Float, nullable=True),
    # delivery back to the chat
    Column("delivery", String(16), nullable=False),
    Column("delivery_attempts", Integer, nullable=False),  # takes by a deliverer
    Column("delivery_failures", Integer, nullable=False),  # failed takes without a retry-after: backoff
    Column("delivery_next_try_at", UTCDateTime, nullable=True),
    Column("delivery_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),  # delivery seconds = delivered - finished
    # platform references to edit the enqueue-time message or post a new one
    Column("interaction_token", Text, nullable=True),
    Column("interaction_created_at", UTCDateTime, nullable=True),
    Column("response_url", Text, nullable=True),
    Column("placeholder_message_id", String(128), nullable=True),
    Column("final_message_id", String(128), nullable=True),
    Column("platform_refs", JSON, nullable=True),
    # claim: WHERE status='queued' AND run_after <= now ORDER BY fair_tag, id
    Index("ix_jobs_claim", "status", "fair_tag", "id"),
    # reap: WHERE status='running' AND lease_expires_at < now
    Index("ix_jobs_lease", "status", "lease_expires_at"),
    # caps and quota: a user's queued/running jobs and today's images
    Index("ix_jobs_user", "platform", "user_id", "status"),
    Index("ix_jobs_user_created", "platform", "user_id", "created_at"),
    # usage by guild and period
    Index("ix_jobs_guild_created", "platform", "guild_id", "created_at"),
    Index("ix_jobs_created", "created_at"),
    Index("ix_jobs_finished", "finished_at"),
    # due deliveries: WHERE delivery='pending' AND status IN (done, failed) AND next_try <= now
    Index("ix_jobs_delivery", "delivery", "delivery_next_try_at"),
    Index("ix_jobs_parent", "parent_job_id"),
)

images = Table(
    "images",
    metadata,
    Column("job_id", BigId, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("index", Integer, primary_key=True, autoincrement=False),  # -1: the grid
    Column("png", LargeBinary, nullable=False),
    # the 256 VQGAN codes (uint16 little-endian) a variation starts from; NULL for the grid
    Column("tokens", LargeBinary, nullable=True),
    # CLIP's cosine similarity of the image with the prompt as typed; NULL: not ranked (grid, upscale)
    Column("score", Float, nullable=True),
)

# Per Discord guild / Slack workspace; NULL means the global default from Settings.
spaces = Table(
    "spaces",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("guild_id", String(64), primary_key=True),
    Column("allowed_channels", JSON, nullable=False),  # [] = every channel
    Column("max_running_per_user", Integer, nullable=True),
    Column("max_queued_per_user", Integer, nullable=True),
    Column("daily_quota_images", Integer, nullable=True),
    Column("candidates_per_image", Integer, nullable=True),
    Column("blocked_words", JSON, nullable=False),
    Column("admin_role_ids", JSON, nullable=False),
    Column("admin_user_ids", JSON, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

bans = Table(
    "bans",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("guild_id", String(64), primary_key=True),  # "" = every guild/workspace of the platform
    Column("user_id", String(64), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("banned_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Start-time fair queueing state per user: the finish tag of their last job, and their weight.
fair_users = Table(
    "fair_users",
    metadata,
    Column("platform", String(16), primary_key=True),
    Column("user_id", String(64), primary_key=True),
    Column("weight", Float, nullable=False),
    Column("last_finish_tag", Float, nullable=False),
)

# Generators say they are alive here (the generator writes, admin views read).
workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("device", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("batch_images", Integer, nullable=False),
    Column("jobs_done", BigInteger, nullable=False),
    Column("images_done", BigInteger, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    # how often it says it is alive: it counts as gone once it misses two of its own heartbeats
    Column("heartbeat_seconds", Float, nullable=False),
    # images per second of drawing, measured over busy time only (ETAs); NULL until it has drawn
    Column("images_per_second", Float, nullable=True),
    Index("ix_workers_last_seen", "last_seen_at"),
)

# Slack workspaces installed through "Add to Slack" (the OAuth flow, bot/slack/oauth.py). slack_sdk's
# AsyncSQLAlchemyInstallationStore and AsyncSQLAlchemyOAuthStateStore read and write these; their shape is
# the library's own (built by its table builders, so the migration test notices if an upgrade changes it),
# but they are created by our migrations like every other table.
slack_installations = AsyncSQLAlchemyInstallationStore.build_installations_table(
    metadata, AsyncSQLAlchemyInstallationStore.default_installations_table_name
)
slack_bots = AsyncSQLAlchemyInstallationStore.build_bots_table(
    metadata, AsyncSQLAlchemyInstallationStore.default_bots_table_name
)
slack_oauth_states = AsyncSQLAlchemyOAuthStateStore.build_oauth_states_table(
    metadata, AsyncSQLAlchemyOAuthStateStore.default_table_name
)

# Dashboard sign-ins: one row per session, so a session survives a restart, can be revoked (the row is
# deleted at sign-out) and expires. The cookie holds a random id; only its SHA-256 is stored here.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    # who signed in: "operator" (the password), or "discord:<user id>" (Sign in with Discord)
    Column("account", String(128), nullable=False),
    Column("user_name", String(128), nullable=False),
    Column("grants", JSON, nullable=False),  # ["discord:<guild id>", …]: servers whose admin pages it sees
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_web_sessions_expires_at", "expires_at"),
)
