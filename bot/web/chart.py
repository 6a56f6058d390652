"""Server-side SVG charts: grouped bars and lines over labelled points, in pure Python.

The dashboard draws its charts here so pages need no chart library and no script to show data. Output is
one `<svg>` element with presentation attributes only (no inline `style`, which the page's Content
Security Policy forbids); every bar and point carries a `<title>` so hovering shows its exact value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# One colour per series, in order; chosen to stay distinguishable for common colour-vision deficiencies.
PALETTE = ("#3b6fd8", "#e0863a", "#2f9e72", "#c64b5c", "#8a63c9", "#6b7a8f")

MARGIN_LEFT = 52
MARGIN_RIGHT = 12
MARGIN_TOP = 28  # room for the legend
MARGIN_BOTTOM = 34  # room for the x labels
TICK_COUNT = 4
MAX_X_LABELS = 12


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above `value`."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-12):
            return float(candidate)
    return float(10 ** (exponent + 1))  # pragma: no cover - the loop always returns


def axis(largest: float, *, is_whole: bool) -> tuple[float, int]:
    """(top of the y axis, number of gridline steps): round steps that reach `largest`. Counts (jobs,
    images) get whole steps, so the axis never reads 1.25 jobs."""
    if largest <= 0:
        return 1.0, 1
    if is_whole and largest <= TICK_COUNT:
        return float(math.ceil(largest)), math.ceil(largest)
    step = nice_ceiling(largest / TICK_COUNT)
    if is_whole and step == 2.5:
        step = 5.0  # whole steps only
    steps = math.ceil(largest / step - 1e-9)
    return step * steps, steps


def format_number(value: float) -> str:
    """Compact axis text: 950, 1.2k, 3.4M; integers without a trailing `.0`."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def _frame(*, width: int, height: int, title: str, body: list[str]) -> str:
    label = escape(title, quote=True)
    return "".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{label}">',
            f"<title>{escape(title)}</title>",
            *body,
            "</svg>",
        ]
    )


def _axes(
    *,
    width: int,
    height: int,
    labels: Sequence[str],
    top: float,
    steps: int,
    formatter: Callable[[float], str],
) -> list[str]:
    plot_bottom = height - MARGIN_BOTTOM
    plot_height = plot_bottom - MARGIN_TOP
    parts: list[str] = []
    for tick in range(steps + 1):
        value = top * tick / steps
        y = plot_bottom - plot_height * tick / steps
        parts.append(
            f'<line class="grid" x1="{MARGIN_LEFT}" x2="{width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d9dee7" stroke-width="1"/>'
        )
        parts.append(
            f'<text class="tick" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5b6577">{escape(formatter(value))}</text>'
        )
    slot = (width - MARGIN_LEFT - MARGIN_RIGHT) / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    for index, text in enumerate(labels):
        if index % every:
            continue
        x = MARGIN_LEFT + slot * (index + 0.5)
        parts.append(
            f'<text class="xlabel" x="{x:.1f}" y="{plot_bottom + 16}" text-anchor="middle" font-size="11" '
            f'fill="#5b6577">{escape(text)}</text>'
        )
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts: list[str] = []
    x = float(MARGIN_LEFT)
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="8" width="10" height="10" rx="2" fill="{colour}"/>')
        parts.append(
            f'<text class="legend" x="{x + 14:.1f}" y="17" font-size="12" fill="#2b3445">'
            f"{escape(one.name)}</text>"
        )
        x += 24 + 7 * len(one.name)
    return parts


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    if not series:
        raise ValueError("a chart needs at least one series")
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {len(labels)} labels")


def _scale(series: Sequence[Series]) -> tuple[float, int]:
    values = [v for one in series for v in one.values]
    return axis(max(values, default=0), is_whole=all(float(v).is_integer() for v in values))


def _empty(*, width: int, height: int, title: str) -> str:
    return _frame(
        width=width,
        height=height,
        title=title,
        body=[
            f'<text class="empty" x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
            f'font-size="13" fill="#5b6577">No data for this selection</text>'
        ],
    )


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    width: int = 640,
    height: int = 220,
    formatter: Callable[[float], str] = format_number,
) -> str:
    """Grouped bars: one group per label, one bar per series inside it."""
    _check(labels, series)
    if not labels:
        return _empty(width=width, height=height, title=title)
    top, steps = _scale(series)
    plot_bottom = height - MARGIN_BOTTOM
    plot_height = plot_bottom - MARGIN_TOP
    slot = (width - MARGIN_LEFT - MARGIN_RIGHT) / len(labels)
    bar_width = max(1.0, slot * 0.8 / len(series))
    body = _axes(width=width, height=height, labels=labels, top=top, steps=steps, formatter=formatter)
    for series_index, one in enumerate(series):
        colour = PALETTE[series_index % len(PALETTE)]
        for index, value in enumerate(one.values):
            bar_height = plot_height * max(value, 0) / top
            x = MARGIN_LEFT + slot * index + slot * 0.1 + bar_width * series_index
            y = plot_bottom - bar_height
            body.append(
                f'<rect class="bar s{series_index}" x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" '
                f'height="{bar_height:.1f}" fill="{colour}" data-value="{value:g}">'
                f"<title>{escape(labels[index])} · {escape(one.name)}: {escape(formatter(value))}</title>"
                "</rect>"
            )
    if len(series) > 1:
        body += _legend(series)
    return _frame(width=width, height=height, title=title, body=body)


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    width: int = 640,
    height: int = 220,
    formatter: Callable[[float], str] = format_number,
) -> str:
    """One polyline per series, a dot (with its value as a tooltip) at each label."""
    _check(labels, series)
    if not labels:
        return _empty(width=width, height=height, title=title)
    top, steps = _scale(series)
    plot_bottom = height - MARGIN_BOTTOM
    plot_height = plot_bottom - MARGIN_TOP
    slot = (width - MARGIN_LEFT - MARGIN_RIGHT) / len(labels)
    body = _axes(width=width, height=height, labels=labels, top=top, steps=steps, formatter=formatter)
    for series_index, one in enumerate(series):
        colour = PALETTE[series_index % len(PALETTE)]
        points = [
            (MARGIN_LEFT + slot * (index + 0.5), plot_bottom - plot_height * max(value, 0) / top)
            for index, value in enumerate(one.values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(
            f'<polyline class="line s{series_index}" points="{path}" fill="none" stroke="{colour}" '
            f'stroke-width="2" stroke-linejoin="round"/>'
        )
        for (x, y), label, value in zip(points, labels, one.values, strict=True):
            body.append(
                f'<circle class="point s{series_index}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" '
                f'data-value="{value:g}"><title>{escape(label)} · {escape(one.name)}: '
                f"{escape(formatter(value))}</title></circle>"
            )
    if len(series) > 1:
        body += _legend(series)
    return _frame(width=width, height=height, title=title, body=body)
