"""`/healthz` and `/metrics` over HTTP, as both processes serve them: the dashboard (bot/web/) and each
generator (its "health" side task, generator/housekeeping.py).

    GET /healthz   public: 200 {"status": "ok"}, or 503 when the database does not answer
    GET /metrics   the queue's metrics (jobs/metrics.py) plus the caller's own families (prometheus_client)

`serving(app, host, port)` runs an aiohttp application until its block exits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web
from prometheus_client.core import Metric

from jobs import metrics
from jobs.queue import Queue

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 2.0

QUEUE = web.AppKey("queue", Queue)
NOW: web.AppKey[Callable[[], datetime]] = web.AppKey("now")
OWN_FAMILIES: web.AppKey[Callable[[], list[Metric]]] = web.AppKey("own_families")


async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[QUEUE].ping(timeout=HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure is "unhealthy"; the reason goes to the log, not the public
        log.warning(
            "health check: database unreachable: %s: %s",
            type(exc).__name__,
            exc,
            extra={"action": "health_failed"},
        )
        return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


async def metrics_page(request: web.Request) -> web.Response:
    families = [
        *await metrics.queue_families(request.app[QUEUE], request.app[NOW]()),
        *(request.app[OWN_FAMILIES]() if OWN_FAMILIES in request.app else []),
    ]
    return web.Response(body=metrics.render(families), headers={"Content-Type": metrics.CONTENT_TYPE})


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` until the block exits; yields its base URL (the real port when `port` is 0)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
