"""The generator process's side tasks, through `generator.serve.serve` itself (deliver-only: no model):
retention applied at start, /healthz and /metrics on the metrics port, a clean stop."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from generator.serve import serve
from jobs.errors import EXIT_OK
from jobs.schema import images, jobs
from jobs.settings import Settings
from tests.jobs.factories import insert_jobs, job_row
from tests.worker.harness import wait_until

PASSWORD = "scrape-me-please"


async def _image_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(images))).scalar_one())


async def test_generator_serves_health_metrics_and_applies_retention(
    db_url: str, engine: AsyncEngine, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    await insert_jobs(
        engine, [job_row(1, status="done", delivery="delivered", created_at=old, run_after=old)]
    )
    async with engine.begin() as conn:
        job_id = (await conn.execute(select(jobs.c.id))).scalar_one()
        await conn.execute(images.insert(), [{"job_id": job_id, "index": -1, "png": b"png", "tokens": None}])
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url=SecretStr(db_url),
        retention_images_days=30,
        generator_metrics_port=0,
        dashboard_password=SecretStr(PASSWORD),
    )
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="generator")
    task = asyncio.create_task(serve(settings, worker_id="gen-t", stop=stop, render=False, deliver=True))
    try:

        async def url() -> str | None:
            if task.done():
                pytest.fail(f"the generator stopped: {task.result()}")
            found = [r for r in caplog.records if getattr(r, "action", "") == "health_started"]
            return found[0].url if found else None  # type: ignore[attr-defined, no-any-return]

        base = await wait_until(url, timeout=20.0, what="the health server")
        await wait_until(lambda: _is_zero(engine), timeout=20.0, what="retention to delete the old pictures")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200 and (await response.json()) == {"status": "ok"}
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {PASSWORD}"}
            async with http.get(f"{base}/metrics", headers=headers) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                body = await response.text()
        (started,) = [r for r in caplog.records if getattr(r, "action", "") == "worker_started"]
        assert {"retention", "health", "deliver", "registry"} <= set(started.tasks)  # type: ignore[attr-defined]
        families = {family.name: family for family in text_string_to_metric_families(body)}
        # the queue-wide families are the dashboard's, by the same names
        assert {"imagine_jobs", "imagine_queue_wait_seconds", "imagine_workers_alive"} <= set(families)
        [done] = [s for s in families["imagine_jobs"].samples if s.labels.get("outcome") == "done"]
        assert done.value == 1
        [info] = families["imagine_generator_info"].samples
        assert info.labels == {"worker_id": "gen-t", "device": "none", "model": "none"} and info.value == 1
        [jobs_done] = families["imagine_generator_jobs_done"].samples
        assert jobs_done.labels == {"worker_id": "gen-t"} and jobs_done.value == 0
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == EXIT_OK


async def _is_zero(engine: AsyncEngine) -> bool:
    return await _image_count(engine) == 0
