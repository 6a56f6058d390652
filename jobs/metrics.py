"""The queue's metrics, as both the dashboard's and each generator's `/metrics` serve them.

`queue_families(queue, now)` reads the queue-wide figures (depth, jobs by status, render seconds, delivery
states, workers alive) in a few aggregate statements; `render` writes them in the Prometheus text exposition
format (version 0.0.4). Written by hand: a handful of gauges, counters and one histogram computed from the
database at scrape time.

Reference: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobs.models import Delivery, Status

if TYPE_CHECKING:
    from jobs.queue import Queue

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RATE_WINDOW_SECONDS = 300.0  # images/s is averaged over the last five minutes

# Render seconds of one job on the generator: tiny checkpoints on a CPU take well under a second, dalle-mega
# on a slow GPU a minute or more.
RENDER_SECONDS_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    for name in labels:
        if not _LABEL.match(name) or name.startswith("__"):
            raise ValueError(f"invalid Prometheus label name {name!r}")
    inner = ",".join(f'{name}="{_escape_label_value(str(value))}"' for name, value in labels.items())
    return "{" + inner + "}"


@dataclass(frozen=True)
class Sample:
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """One metric: its name, help text, type (`gauge` or `counter`) and samples."""

    name: str
    help: str
    type: str
    samples: Sequence[Sample]

    def lines(self) -> list[str]:
        if not _NAME.match(self.name):
            raise ValueError(f"invalid Prometheus metric name {self.name!r}")
        out = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.type}"]
        out += [f"{self.name}{_labels(s.labels)} {format_value(s.value)}" for s in self.samples]
        return out


def gauge(name: str, help: str, samples: Iterable[Sample] | float) -> Family:
    return Family(
        name, help, "gauge", [Sample(samples)] if isinstance(samples, int | float) else list(samples)
    )


def counter(name: str, help: str, samples: Iterable[Sample] | float) -> Family:
    if not name.endswith("_total"):
        raise ValueError(f"counter {name!r} must end in _total")
    return Family(
        name, help, "counter", [Sample(samples)] if isinstance(samples, int | float) else list(samples)
    )


@dataclass(frozen=True)
class Histogram:
    """A histogram: cumulative `_bucket{le=…}` counts (the `+Inf` bucket is `count`), `_sum` and `_count`."""

    name: str
    help: str
    buckets: Sequence[tuple[float, int]]  # (upper bound, observations at or below it), bounds increasing
    sum: float
    count: int

    @classmethod
    def observe(cls, name: str, help: str, bounds: Sequence[float], values: Sequence[float]) -> Histogram:
        """From raw observations (tests; small data sets). The dashboard counts buckets in SQL instead."""
        buckets = [(bound, sum(1 for value in values if value <= bound)) for bound in bounds]
        return cls(name, help, buckets, float(sum(values)), len(values))

    def lines(self) -> list[str]:
        bounds = [bound for bound, _ in self.buckets]
        counts = [count for _, count in self.buckets]
        if bounds != sorted(bounds) or counts != sorted(counts) or (counts and counts[-1] > self.count):
            raise ValueError("histogram buckets must be increasing and cumulative")
        out = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} histogram"]
        for bound, count in (*self.buckets, (math.inf, self.count)):
            out.append(f'{self.name}_bucket{{le="{format_value(bound)}"}} {count}')
        out.append(f"{self.name}_sum {format_value(self.sum)}")
        out.append(f"{self.name}_count {self.count}")
        return out


def render(families: Iterable[Family | Histogram]) -> str:
    """The whole exposition: families in order, ending with a newline as the format requires."""
    lines: list[str] = []
    for family in families:
        lines += family.lines()
    return "\n".join(lines) + "\n"


async def queue_families(queue: Queue, now: datetime) -> list[Family | Histogram]:
    """The queue-wide metrics, the same from the dashboard and from every generator."""
    counts = await queue.counters(
        since=now - timedelta(seconds=RATE_WINDOW_SECONDS), buckets=RENDER_SECONDS_BUCKETS
    )
    workers = await queue.workers_alive(now=now)
    return [
        gauge(
            "imagine_queue_depth_jobs",
            "Jobs waiting for a generator.",
            counts.jobs_by_status.get("queued", 0),
        ),
        gauge("imagine_queue_depth_images", "Images waiting for a generator.", counts.queued_images),
        gauge(
            "imagine_jobs",
            "Jobs in the database by status.",
            [Sample(counts.jobs_by_status.get(s.value, 0), {"status": s.value}) for s in Status],
        ),
        Histogram(
            "imagine_render_seconds",
            "GPU seconds spent rendering each finished job (all its attempts).",
            counts.render_seconds_buckets,
            counts.render_seconds_sum,
            counts.render_seconds_count,
        ),
        counter("imagine_images_rendered_total", "Images of finished jobs.", counts.images_done_total),
        gauge(
            "imagine_images_per_second",
            f"Images finished per second over the last {RATE_WINDOW_SECONDS:.0f} seconds.",
            counts.images_done_since / RATE_WINDOW_SECONDS,
        ),
        gauge(
            "imagine_deliveries",
            "Finished jobs by delivery state (pending: not yet posted to the chat).",
            [Sample(counts.delivery_by_state.get(d.value, 0), {"state": d.value}) for d in Delivery],
        ),
        counter(
            "imagine_delivery_failures_total",
            "Finished jobs whose result could not be posted before the delivery deadline.",
            counts.delivery_by_state.get(Delivery.UNDELIVERABLE.value, 0),
        ),
        gauge("imagine_workers_alive", "Generators that heartbeated within one lease.", len(workers)),
    ]
