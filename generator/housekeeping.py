"""The generator's side tasks beside rendering and delivery, supervised by `Worker` (generator/worker.py).

    "retention"  every RETENTION_INTERVAL_SECONDS: jobs.retention.apply_retention (IMAGINE_RETENTION_*_DAYS)
    "health"     GET /healthz and /metrics on IMAGINE_GENERATOR_METRICS_HOST:PORT (when the port is set)

`/healthz` and `/metrics` are the handlers the dashboard serves too (jobs/health.py): 200 {"status": "ok"} or
503 when the database is unreachable; the queue-wide metric families plus this generator's own: its info,
batch capacity, jobs and images done since start. When IMAGINE_DASHBOARD_PASSWORD is set, `/metrics` wants
`Authorization: Bearer <that password>`, as the dashboard's does; `/healthz` is public.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from generator.dbretry import Outages
from generator.worker import SideTask
from jobs.health import NOW, OWN_FAMILIES, QUEUE, healthz, metrics_page, serving
from jobs.queue import Queue
from jobs.retention import RETENTION_INTERVAL_SECONDS, Retention
from jobs.settings import Settings

log = logging.getLogger(__name__)

METRICS_TOKEN = web.AppKey("metrics_token", str)


def retention_task(
    queue: Queue, retention: Retention, *, interval: float = RETENTION_INTERVAL_SECONDS
) -> SideTask:
    """A side task applying `retention` at start and every `interval` seconds until stop."""

    outages = Outages(describe=queue.fault)

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await queue.apply_retention(retention)
            except Exception as exc:
                outages.ride_out(exc, "retention")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    return run


class GeneratorStats:
    """What this process's /metrics says about itself; the render loop's counters are read when scraped."""

    def __init__(
        self,
        *,
        worker_id: str,
        device: str,
        model: str,
        capacity: Callable[[], int],
        jobs_done: Callable[[], int],
        images_done: Callable[[], int],
    ) -> None:
        self.worker_id, self.device, self.model = worker_id, device, model
        self.capacity, self.jobs_done, self.images_done = capacity, jobs_done, images_done
        self.started = time.time()

    def families(self) -> list[Metric]:
        labels = ["worker_id"]
        info = InfoMetricFamily("imagine_generator", "This generator: its worker id, device and model.")
        info.add_metric(
            [], {"worker_id": self.worker_id, "device": self.device or "none", "model": self.model or "none"}
        )
        started = GaugeMetricFamily(
            "imagine_generator_start_time_seconds", "When this generator started (Unix time).", labels=labels
        )
        started.add_metric([self.worker_id], self.started)
        capacity = GaugeMetricFamily(
            "imagine_generator_batch_capacity_images",
            "Images this generator draws in one batch (halved after an out-of-memory).",
            labels=labels,
        )
        capacity.add_metric([self.worker_id], self.capacity())
        jobs_done = CounterMetricFamily(
            "imagine_generator_jobs_done", "Jobs this generator finished since it started.", labels=labels
        )
        jobs_done.add_metric([self.worker_id], self.jobs_done())
        images_done = CounterMetricFamily(
            "imagine_generator_images_done", "Images this generator finished since it started.", labels=labels
        )
        images_done.add_metric([self.worker_id], self.images_done())
        return [info, started, capacity, jobs_done, images_done]


async def _metrics(request: web.Request) -> web.Response:
    token = request.app[METRICS_TOKEN]
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, token.encode()):
            raise web.HTTPUnauthorized(
                text="Send Authorization: Bearer <IMAGINE_DASHBOARD_PASSWORD>.",
                headers={"WWW-Authenticate": 'Bearer realm="imagine generator"'},
            )
    return await metrics_page(request)


def create_health_app(*, queue: Queue, stats: GeneratorStats, token: str = "") -> web.Application:
    app = web.Application()
    app[QUEUE] = queue
    app[NOW] = lambda: datetime.now(UTC)
    app[OWN_FAMILIES] = stats.families
    app[METRICS_TOKEN] = token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", _metrics)
    return app


def health_task(settings: Settings, queue: Queue, stats: GeneratorStats) -> SideTask:
    """A side task serving /healthz and /metrics until stop (a port already taken stops the generator)."""
    password = settings.dashboard_password
    token = password.get_secret_value() if password is not None else ""
    app = create_health_app(queue=queue, stats=stats, token=token)
    port = settings.generator_metrics_port or 0

    async def run(stop: asyncio.Event) -> None:
        async with serving(app, settings.generator_metrics_host, port) as url:
            log.info("metrics and health on %s", url, extra={"action": "health_started", "url": url})
            await stop.wait()

    return run
