"""Migrations: empty → head → base on both engines; no drift between migrations and `jobs/schema.py`;
the app refuses a schema that is behind and names the fix."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from jobs.db import check_schema, connect, downgrade, head_revision, migrate
from jobs.errors import SchemaOutOfDate
from jobs.hints import command_hint
from jobs.schema import metadata
from tests.jobs.databases import ENGINES, fresh_postgres_database, require_postgres, sqlite_url

TABLES = {
    "jobs",
    "images",
    "spaces",
    "bans",
    "fair_users",
    "workers",
    "slack_installations",
    "slack_bots",
    "slack_oauth_states",
    "web_sessions",
}


@pytest.fixture(params=ENGINES)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each engine, just for this test."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "empty.db")
        return
    require_postgres()
    with fresh_postgres_database("_m") as url:
        yield url


async def _tables(url: str) -> set[str]:
    engine = connect(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _drift(url: str) -> list[object]:
    engine = connect(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()


async def test_upgrade_to_head_and_down_to_base(empty_url: str) -> None:
    await asyncio.to_thread(migrate, empty_url)
    assert await _tables(empty_url) == TABLES | {"alembic_version"}
    await asyncio.to_thread(downgrade, empty_url)
    assert await _tables(empty_url) == {"alembic_version"}
    await asyncio.to_thread(migrate, empty_url)  # and up again
    assert await _tables(empty_url) >= TABLES


async def test_migrations_match_the_schema_module(empty_url: str) -> None:
    await asyncio.to_thread(migrate, empty_url)
    assert await _drift(empty_url) == []


async def test_schema_behind_is_refused_with_the_fix(empty_url: str) -> None:
    engine = connect(empty_url)
    try:
        with pytest.raises(SchemaOutOfDate) as caught:
            await check_schema(engine)
        assert str(caught.value) == (
            "database schema is at nothing (empty database), "
            f"code needs {head_revision()}: run `{command_hint('imagine')} migrate`"
        )
        await asyncio.to_thread(migrate, empty_url)
        await check_schema(engine)
        await asyncio.to_thread(downgrade, empty_url)
        with pytest.raises(SchemaOutOfDate, match="imagine migrate`"):
            await check_schema(engine)
    finally:
        await engine.dispose()


async def test_drift_check_sees_a_column_missing_from_the_migrations(empty_url: str) -> None:
    from sqlalchemy import Column, Integer, MetaData

    await asyncio.to_thread(migrate, empty_url)
    changed = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["jobs"].append_column(Column("colour", Integer))
    engine = connect(empty_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), changed)
            )
    finally:
        await engine.dispose()
    assert [(op[0], op[3].name) for op in diff] == [("add_column", "colour")]
