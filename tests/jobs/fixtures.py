"""Database fixtures: `db_url` runs a test once on SQLite and once on Postgres; `engine`, `queue`,
`make_queue(**limits)` build on it.

A pytest plugin, loaded for every suite by `pytest_plugins` in tests/conftest.py: never import these
fixtures into a module. A suite that wants other databases or limits redefines `db_url`, `make_queue` or
`queue` in its own conftest.py; the fixtures here that depend on them then use its versions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.db import connect, migrate
from jobs.queue import Limits, Queue
from jobs.schema import metadata
from tests.jobs.databases import ENGINES, copy_sqlite, fresh_postgres_database, require_postgres, sqlite_url

# The limits tests start from: generous, so each test tightens only what it checks.
TEST_LIMITS = Limits(
    max_queued_per_user=10_000, max_running_per_user=10_000, daily_quota_images=0, retry_backoff_seconds=0.0
)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """This session's own migrated Postgres database."""
    require_postgres()
    with fresh_postgres_database() as url:
        migrate(url)
        yield url


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or this session's Postgres database emptied."""
    if request.param == "sqlite":
        return copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "imagine.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = connect(db_url)
    if engine.dialect.name == "postgresql":
        tables = ", ".join(table.name for table in metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
def make_queue(engine: AsyncEngine) -> Callable[..., Queue]:
    """`make_queue(max_attempts=2, …)`: a Queue on the test database with some limits changed."""

    def make(**limits: Any) -> Queue:
        return Queue(engine=engine, limits=Limits(**{**_fields(TEST_LIMITS), **limits}))

    return make


@pytest.fixture
def queue(make_queue: Callable[..., Queue]) -> Queue:
    return make_queue()


def _fields(limits: Limits) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in Limits.__slots__}
