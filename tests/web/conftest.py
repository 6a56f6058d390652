"""Fixtures for the dashboard tests: a real SQLite database migrated with the project's migrations, the
real `Queue` on it, and the dashboard app in aiohttp's test client (signed out, or signed in as admin)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import create_app
from bot.web.config import DashboardConfig
from jobs.db import connect, migrate
from jobs.models import Job
from jobs.queue import Queue
from jobs.settings import Settings, load_settings
from tests.jobs.databases import copy_sqlite, sqlite_url
from tests.web.data import WEB_LIMITS, seed_history
from tests.web.helpers import PASSWORD, sign_in


@pytest.fixture(scope="session")
def web_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web-template") / "template.db"
    migrate(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def seeded_template(web_sqlite_template: Path) -> tuple[Path, dict[str, Job]]:
    """A database with `seed_history`'s week of jobs, made once; tests copy it like the empty one."""
    path = web_sqlite_template.with_name("seeded.db")
    shutil.copyfile(web_sqlite_template, path)

    async def seed() -> dict[str, Job]:
        engine = connect(sqlite_url(path))
        try:
            return await seed_history(Queue(engine=engine, limits=WEB_LIMITS))
        finally:
            await engine.dispose()

    return path, asyncio.run(seed())


@pytest.fixture
def db_url(request: pytest.FixtureRequest, web_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated database of the test's own: empty, or the seeded week if the test asks for `history`."""
    if "history" in request.fixturenames:
        template = request.getfixturevalue("seeded_template")[0]
    else:
        template = web_sqlite_template
    return copy_sqlite(template, tmp_path / "imagine.db")


@pytest.fixture
def history(seeded_template: tuple[Path, dict[str, Job]], db_url: str) -> dict[str, Job]:
    """The jobs of `tests.web.data.seed_history`, already in this test's database (by name: "boat", …)."""
    return seeded_template[1]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return load_settings(
        env_file=None,
        database_url=db_url,
        dashboard_enabled=True,
        dashboard_password=PASSWORD,
    )


@pytest.fixture
async def queue(db_url: str) -> AsyncIterator[Queue]:
    engine = connect(db_url)
    yield Queue(engine=engine, limits=WEB_LIMITS)
    await engine.dispose()


@pytest.fixture
def dashboard_config(settings: Settings) -> DashboardConfig:
    return DashboardConfig.from_settings(settings, login_attempts=3, login_window_seconds=60)


@pytest.fixture
async def client(
    settings: Settings, queue: Queue, dashboard_config: DashboardConfig
) -> AsyncIterator[TestClient]:
    """The dashboard, signed out."""
    app = create_app(settings=settings, queue=queue, config=dashboard_config)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def admin(client: TestClient) -> TestClient:
    """The same client, signed in."""
    assert await sign_in(client) == 302
    return client
