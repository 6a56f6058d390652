"""Prometheus text exposition format (version 0.0.4), written by hand: the dashboard needs a handful of
gauges, counters and one histogram, which does not justify a client library and its global registry.

Reference: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

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
