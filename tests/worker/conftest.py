"""Fixtures for the generator-process tests: a tiny checkpoint made once per session and an in-process
worker harness. The queue's real databases (`db_url` on SQLite and Postgres, `engine`, `queue`,
`make_queue`) come from tests/jobs/fixtures.py, a plugin of tests/conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from generator.model.dalle import DalleMini
from generator.testing import make_tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoints: tuple[Path, Path]) -> DalleMini:
    return DalleMini.load(*tiny_checkpoints)


@pytest.fixture
async def running() -> AsyncIterator[Callable[..., Awaitable[None]]]:
    """`await start(worker)`: run a Worker in the background; it is stopped at the end of the test."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(worker: Any) -> None:
        stop = asyncio.Event()
        stops.append((stop, asyncio.create_task(worker.run(stop), name="worker-under-test")))

    yield start
    for stop, task in stops:
        stop.set()
        await asyncio.wait_for(task, 30)
