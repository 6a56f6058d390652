"""Real databases for the queue tests: SQLite files in tmp dirs and a Postgres database per test session.

Postgres: `IMAGINE_TEST_POSTGRES_URL` (an admin connection, default postgres@127.0.0.1:5432/postgres).
Each session creates `imagine_test_<random>` and drops it at the end, so parallel runs never collide.
Unreachable server: the Postgres tests skip with the reason, or fail when `CI=true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
ENGINES = ("sqlite", "postgres")


def admin_url() -> str:
    return os.environ.get("IMAGINE_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(admin_url()), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@functools.cache
def postgres_unreachable() -> str | None:
    """Why Postgres cannot be used, or None."""
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"Postgres at {make_url(admin_url())!r} is unreachable ({type(exc).__name__}: {exc})"
    return None


def require_postgres() -> None:
    reason = postgres_unreachable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true needs it (start it: pg_ctlcluster <version> main start)")
    pytest.skip(f"{reason}; set IMAGINE_TEST_POSTGRES_URL to run the Postgres tests")


@contextlib.contextmanager
def fresh_postgres_database(suffix: str = "") -> Iterator[str]:
    """Create an empty database; yield its URL; drop it (even if connections linger)."""
    name = f"imagine_test_{secrets.token_hex(4)}{suffix}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.as_posix()}"


def copy_sqlite(template: Path, target: Path) -> str:
    """A migrated SQLite database, copied from the session's template (faster than migrating)."""
    shutil.copyfile(template, target)
    return sqlite_url(target)
