"""The queue's metrics, as both the dashboard's and each generator's `/metrics` serve them, written by
prometheus_client.

Every queue-wide figure is read from the database when scraped (`queue_families`): the jobs table is the
history, so its counters only grow (retention blanks pictures and prompts, never rows) and they are the
same whichever process is asked. That is what makes them safe with any number of bot and generator
processes: no process keeps a count of its own that a restart would lose or a second worker would split,
and no `PROMETHEUS_MULTIPROC_DIR` is needed. Sum nothing across targets; take any one (or `max`). A
process's own figures (a generator's batch capacity, what it finished since it started) carry its
`worker_id` label.

prometheus_client writes the text (escaping, `_total`, `_bucket`/`_sum`/`_count`, `+Inf`); the families
are built as a custom collector's are, from values read at scrape time, as its documentation describes
for figures kept elsewhere ("custom collectors").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from jobs.models import Delivery, Status

if TYPE_CHECKING:
    from jobs.queue import Queue
    from jobs.reports import Bucketed

CONTENT_TYPE = CONTENT_TYPE_LATEST
RATE_WINDOW_SECONDS = 300.0  # images/s is averaged over the last five minutes

# Seconds a job waits for a generator: none on an idle one, minutes behind a long line.
QUEUE_WAIT_SECONDS_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Render seconds of one job on the generator: tiny checkpoints on a CPU take well under a second, dalle-mega
# on a slow GPU a minute or more.
RENDER_SECONDS_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
# Seconds from done to posted: a second or two, more while a platform rate-limits or is down.
DELIVERY_SECONDS_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

OUTCOME = "outcome"


def histogram(name: str, documentation: str, bucketed: Bucketed) -> HistogramMetricFamily:
    buckets = [(floatToGoString(bound), float(count)) for bound, count in bucketed.buckets]
    return HistogramMetricFamily(
        name,
        documentation,
        buckets=[*buckets, ("+Inf", float(bucketed.count))],
        sum_value=bucketed.sum,
    )


async def queue_families(queue: Queue, now: datetime) -> list[Metric]:
    """The queue-wide metrics, the same from the dashboard and from every generator."""
    counts = await queue.counters(
        since=now - timedelta(seconds=RATE_WINDOW_SECONDS),
        wait_buckets=QUEUE_WAIT_SECONDS_BUCKETS,
        render_buckets=RENDER_SECONDS_BUCKETS,
        delivery_buckets=DELIVERY_SECONDS_BUCKETS,
    )
    workers = await queue.workers_alive(now=now)
    finished_jobs = CounterMetricFamily(
        "imagine_jobs",
        "Finished jobs by platform, kind (imagine, reroll, variation, pick) and outcome.",
        labels=["platform", "kind", OUTCOME],
    )
    images = CounterMetricFamily(
        "imagine_images_rendered", "Images drawn by done jobs (picks reuse a drawn one).", labels=["platform"]
    )
    gpu = CounterMetricFamily(
        "imagine_gpu_seconds", "GPU seconds spent on finished jobs, every attempt.", labels=["platform"]
    )
    images_by_platform: dict[str, int] = {}
    gpu_by_platform: dict[str, float] = {}
    for group in counts.finished:
        finished_jobs.add_metric([group.platform, group.kind, group.outcome], group.jobs)
        images_by_platform[group.platform] = images_by_platform.get(group.platform, 0) + group.images
        gpu_by_platform[group.platform] = gpu_by_platform.get(group.platform, 0.0) + group.gpu_seconds
    for platform, value in sorted(images_by_platform.items()):
        images.add_metric([platform], value)
    for platform, seconds in sorted(gpu_by_platform.items()):
        gpu.add_metric([platform], seconds)
    deliveries = CounterMetricFamily(
        "imagine_deliveries",
        "Finished jobs whose result was posted (delivered) or given up on (undeliverable).",
        labels=["state"],
    )
    for state in (Delivery.DELIVERED, Delivery.UNDELIVERABLE):
        deliveries.add_metric([state.value], counts.delivery_by_state.get(state.value, 0))
    return [
        GaugeMetricFamily(
            "imagine_queue_depth_jobs",
            "Jobs waiting for a generator.",
            value=counts.jobs_by_status.get(Status.QUEUED.value, 0),
        ),
        GaugeMetricFamily(
            "imagine_queue_depth_images", "Images waiting for a generator.", value=counts.queued_images
        ),
        GaugeMetricFamily(
            "imagine_jobs_running",
            "Jobs a generator is drawing now.",
            value=counts.jobs_by_status.get(Status.RUNNING.value, 0),
        ),
        finished_jobs,
        images,
        gpu,
        GaugeMetricFamily(
            "imagine_images_per_second",
            f"Images finished per second over the last {RATE_WINDOW_SECONDS:.0f} seconds.",
            value=counts.images_done_since / RATE_WINDOW_SECONDS,
        ),
        histogram(
            "imagine_queue_wait_seconds",
            "Seconds from enqueue to a generator starting the job.",
            counts.queue_wait_seconds,
        ),
        histogram(
            "imagine_render_seconds",
            "GPU seconds spent rendering each finished job (all its attempts).",
            counts.render_seconds,
        ),
        histogram(
            "imagine_delivery_seconds",
            "Seconds from a job finishing to its result posted in the chat.",
            counts.delivery_seconds,
        ),
        deliveries,
        GaugeMetricFamily(
            "imagine_deliveries_pending",
            "Finished jobs whose result is not yet posted to the chat.",
            value=counts.delivery_by_state.get(Delivery.PENDING.value, 0),
        ),
        GaugeMetricFamily(
            "imagine_workers_alive", "Generators that heartbeated within one lease.", value=len(workers)
        ),
    ]


class _Families(Collector):
    """Families already read (asynchronously, from the database) for one scrape."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: Iterable[Metric]) -> bytes:
    """The exposition of one scrape, written by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families)))
    return generate_latest(registry)
