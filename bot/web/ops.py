"""`/healthz` (public: is the dashboard up and its database reachable) and `/metrics` (Prometheus text;
signed in, or `Authorization: Bearer <dashboard password>` for a scraper)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import text

from bot.web import metrics
from bot.web.keys import NOW, queue_of
from jobs import admin
from jobs.models import Delivery, Status

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

HEALTH_TIMEOUT_SECONDS = 2.0
RATE_WINDOW_SECONDS = 300.0  # images/s is averaged over the last five minutes


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    queue = queue_of(request)
    if queue is not None:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS), queue.engine.connect() as conn:
                await conn.execution_options(sqlite_deferred=True)
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure is "unhealthy"; the reason goes to the log, not the public
            log.warning(
                "health check: database unreachable: %s: %s",
                type(exc).__name__,
                exc,
                extra={"action": "dashboard_health_failed"},
            )
            return web.json_response({"status": "error", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    families = await queue_families(queue_of(request), request.app[NOW]())
    return web.Response(text=metrics.render(families), headers={"Content-Type": metrics.CONTENT_TYPE})


async def queue_families(queue: Any, now: datetime) -> list[metrics.Family | metrics.Histogram]:
    """The queue-wide metrics (the generator's own /metrics serves them too: generator/housekeeping.py)."""
    counts = await admin.counters(
        queue, since=now - timedelta(seconds=RATE_WINDOW_SECONDS), buckets=metrics.RENDER_SECONDS_BUCKETS
    )
    workers = await queue.workers_online(now=now)
    families: list[metrics.Family | metrics.Histogram] = [
        metrics.gauge(
            "imagine_queue_depth_jobs",
            "Jobs waiting for a generator.",
            counts.jobs_by_status.get("queued", 0),
        ),
        metrics.gauge("imagine_queue_depth_images", "Images waiting for a generator.", counts.queued_images),
        metrics.gauge(
            "imagine_jobs",
            "Jobs in the database by status.",
            [metrics.Sample(counts.jobs_by_status.get(s.value, 0), {"status": s.value}) for s in Status],
        ),
        metrics.Histogram(
            "imagine_render_seconds",
            "GPU seconds spent rendering each finished job (all its attempts).",
            counts.render_seconds_buckets,
            counts.render_seconds_sum,
            counts.render_seconds_count,
        ),
        metrics.counter(
            "imagine_images_rendered_total", "Images of finished jobs.", counts.images_done_total
        ),
        metrics.gauge(
            "imagine_images_per_second",
            f"Images finished per second over the last {RATE_WINDOW_SECONDS:.0f} seconds.",
            counts.images_done_since / RATE_WINDOW_SECONDS,
        ),
        metrics.gauge(
            "imagine_deliveries",
            "Finished jobs by delivery state (pending: not yet posted to the chat).",
            [metrics.Sample(counts.delivery_by_state.get(d.value, 0), {"state": d.value}) for d in Delivery],
        ),
        metrics.counter(
            "imagine_delivery_failures_total",
            "Finished jobs whose result could not be posted before the delivery deadline.",
            counts.delivery_by_state.get(Delivery.UNDELIVERABLE.value, 0),
        ),
        metrics.gauge("imagine_workers_alive", "Generators that heartbeated within one lease.", len(workers)),
    ]
    return families
