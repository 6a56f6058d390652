"""Starting the dashboard: `run_dashboard` (what `imagine serve` opens) and `imagine dashboard`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from bot.web.config import DashboardConfig
from bot.web.server import run_dashboard
from jobs.errors import SettingsError
from jobs.queue import Queue
from jobs.settings import Settings, load_settings
from tests.web.helpers import PASSWORD


async def test_run_dashboard_serves_on_localhost_until_closed(settings: Settings, queue: Queue) -> None:
    config = DashboardConfig.from_settings(settings, port=0)
    assert config.host == "127.0.0.1"  # the default: this machine only
    async with run_dashboard(settings, queue, config=config) as url:
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{url}/history", allow_redirects=False) as response:
                assert response.status == 302
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/healthz")


def test_no_password_no_dashboard() -> None:
    settings = load_settings(env_file=None)
    with pytest.raises(SettingsError, match="IMAGINE_DASHBOARD_PASSWORD must be set"):
        DashboardConfig.from_settings(settings)
    assert PASSWORD not in repr(DashboardConfig(password=PASSWORD))


async def test_imagine_dashboard_command(db_url: str) -> None:
    env = {
        **os.environ,
        "IMAGINE_DATABASE_URL": db_url,
        "IMAGINE_DASHBOARD_PASSWORD": PASSWORD,
        "IMAGINE_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "dashboard", "--port", "0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("imagine: admin dashboard on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 130
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
