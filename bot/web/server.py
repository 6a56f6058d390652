"""Serving the dashboard beside the rest of the product: `async with run_dashboard(settings, queue):`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from bot.web.app import create_app
from bot.web.config import DashboardConfig

log = logging.getLogger(__name__)


@asynccontextmanager
async def run_dashboard(
    settings: Any, queue: Any, *, config: DashboardConfig | None = None
) -> AsyncIterator[str]:
    """Serve the dashboard until the block exits; yields its base URL (with the real port if port 0).

    Bound to `IMAGINE_DASHBOARD_HOST` (127.0.0.1 unless changed) and `IMAGINE_DASHBOARD_PORT`. The queue
    stays open after exit: its owner, `main()`, closes it.
    """
    config = config or DashboardConfig.from_settings(settings)
    app = create_app(settings=settings, queue=queue, config=config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        log.info("admin dashboard on %s", url, extra={"action": "dashboard_started", "url": url})
        yield url
    finally:
        await runner.cleanup()
