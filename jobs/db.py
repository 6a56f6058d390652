"""Engines and the schema version: `connect`, `migrate`, `ensure_migrated`, `check_schema`.

SQLite is tuned for a queue: WAL (readers never block the writer), a busy timeout (writers wait instead
of failing), foreign keys on, and every write transaction opened with `BEGIN IMMEDIATE`, so two
claimers serialize at BEGIN rather than deadlock upgrading read locks. Read-only work may open a
deferred transaction with `engine.connect().execution_options(sqlite_deferred=True)`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from jobs.errors import SchemaOutOfDate
from jobs.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def connect(settings_or_url: Settings | str, **engine_kwargs: Any) -> AsyncEngine:
    """An async engine for the queue database (no I/O until first use)."""
    url = settings_or_url if isinstance(settings_or_url, str) else settings_or_url.db_url
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine_kwargs.setdefault("pool_size", 10)
        engine_kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **engine_kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    timeout = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    engine = create_async_engine(url, connect_args=timeout, **engine_kwargs)
    _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so "begin" below decides how each one starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: a commit survives a process crash; only an OS crash may lose the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        deferred = conn.get_execution_options().get("sqlite_deferred", False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def alembic_config(url: str | None = None) -> Config:
    """Alembic's config without an ini file: migrations/ and the given URL."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions has no revision"
    return head


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (blocking; call from sync code or a thread)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


async def migrate_async(url: str, revision: str = "head") -> None:
    # Alembic's async env runs its own event loop; give it a thread.
    await asyncio.to_thread(migrate, url, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def check_schema(engine: AsyncEngine) -> None:
    """Raise `SchemaOutOfDate` (naming `imagine migrate`) unless the database is at the code's head."""
    current, needed = await current_revision(engine), head_revision()
    if current != needed:
        raise SchemaOutOfDate(current, needed)


async def ensure_migrated(url: str) -> bool:
    """Bring the database to the code's schema; True if it migrated (`imagine serve`, `imagine "prompt"`)."""
    engine = connect(url)
    try:
        if await current_revision(engine) == head_revision():
            return False
    finally:
        await engine.dispose()
    await migrate_async(url)
    return True
