"""The generator's side tasks beside rendering and delivery, supervised by `Worker` (generator/worker.py).

    "retention"  every RETENTION_INTERVAL_SECONDS: jobs.retention.apply_retention (IMAGINE_RETENTION_*_DAYS)
    "health"     GET /healthz and /metrics on IMAGINE_GENERATOR_METRICS_HOST:PORT (when the port is set)

`/healthz` is the dashboard's own handler (200 {"status": "ok"}, or 503 when the database is unreachable);
`/metrics` serves the dashboard's queue-wide families plus this generator's: its info, batch capacity,
jobs and images done since start. When IMAGINE_DASHBOARD_PASSWORD is set, `/metrics` wants
`Authorization: Bearer <that password>`, as the dashboard's does; `/healthz` is public.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from bot.web import metrics
from bot.web.keys import NOW, QUEUE
from bot.web.ops import healthz, queue_families
from generator.dbretry import is_transient
from generator.worker import SideTask
from jobs.queue import Queue
from jobs.retention import RETENTION_INTERVAL_SECONDS, Retention, apply_retention
from jobs.settings import Settings

log = logging.getLogger(__name__)

OWN_FAMILIES = web.AppKey("own_families", Callable[[], list[metrics.Family]])  # type: ignore[type-abstract]
METRICS_TOKEN = web.AppKey("metrics_token", str)


def retention_task(
    queue: Queue, retention: Retention, *, interval: float = RETENTION_INTERVAL_SECONDS
) -> SideTask:
    """A side task applying `retention` at start and every `interval` seconds until stop."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await apply_retention(queue.engine, retention)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning(
                    "retention skipped, database unavailable: %s",
                    str(exc).splitlines()[0][:200],
                    extra={"action": "db_retry"},
                )
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

    def families(self) -> list[metrics.Family]:
        labels = {"worker_id": self.worker_id}
        info = {**labels, "device": self.device or "none", "model": self.model or "none"}
        return [
            metrics.gauge(
                "imagine_generator_info",
                "This generator: its worker id, device and model.",
                [metrics.Sample(1, info)],
            ),
            metrics.gauge(
                "imagine_generator_start_time_seconds",
                "When this generator started (Unix time).",
                [metrics.Sample(self.started, labels)],
            ),
            metrics.gauge(
                "imagine_generator_batch_capacity_images",
                "Images this generator draws in one batch (halved after an out-of-memory).",
                [metrics.Sample(self.capacity(), labels)],
            ),
            metrics.counter(
                "imagine_generator_jobs_done_total",
                "Jobs this generator finished since it started.",
                [metrics.Sample(self.jobs_done(), labels)],
            ),
            metrics.counter(
                "imagine_generator_images_done_total",
                "Images this generator finished since it started.",
                [metrics.Sample(self.images_done(), labels)],
            ),
        ]


async def _metrics(request: web.Request) -> web.Response:
    token = request.app[METRICS_TOKEN]
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(given, token.encode()):
            raise web.HTTPUnauthorized(
                text="Send Authorization: Bearer <IMAGINE_DASHBOARD_PASSWORD>.",
                headers={"WWW-Authenticate": 'Bearer realm="imagine generator"'},
            )
    families = [*await queue_families(request.app[QUEUE], request.app[NOW]()), *request.app[OWN_FAMILIES]()]
    return web.Response(text=metrics.render(families), headers={"Content-Type": metrics.CONTENT_TYPE})


def create_health_app(*, queue: Queue, stats: GeneratorStats, token: str = "") -> web.Application:
    app = web.Application()
    app[QUEUE] = queue
    app[NOW] = lambda: datetime.now(UTC)
    app[OWN_FAMILIES] = stats.families
    app[METRICS_TOKEN] = token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", _metrics)
    return app


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
