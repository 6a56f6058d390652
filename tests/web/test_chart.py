"""The SVG chart renderer: valid SVG, bars proportional to values, labels escaped, edge cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.web.chart import Series, axis, bar_chart, format_number, line_chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 1.0),
        (1, 1.0),
        (7, 10.0),
        (11, 20.0),
        (21, 25.0),
        (26, 50.0),
        (0.3, 0.5),
        (100, 100.0),
        (101, 200.0),
    ],
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("largest", "is_whole", "expected"),
    [
        (0, True, (1.0, 1)),
        (1, True, (1.0, 1)),
        (3, True, (3.0, 3)),
        (5, True, (6.0, 3)),  # steps of 2
        (9, True, (10.0, 2)),  # steps of 5 (never 2.5 jobs)
        (10, False, (10.0, 4)),  # steps of 2.5
        (0.3, False, (0.3, 3)),
        (37, True, (40.0, 4)),
    ],
)
def test_axis(largest: float, is_whole: bool, expected: tuple[float, int]) -> None:
    top, steps = axis(largest, is_whole=is_whole)
    assert (top, steps) == (pytest.approx(expected[0]), expected[1])


def test_format_number() -> None:
    assert [format_number(v) for v in (0, 7, 2.5, 950, 1200, 3_400_000)] == [
        "0",
        "7",
        "2.5",
        "950",
        "1.2k",
        "3.4M",
    ]


def test_bar_heights_are_proportional_and_values_kept() -> None:
    svg = bar_chart(
        title="Jobs per day", labels=["11-01", "11-02", "11-03"], series=[Series("jobs", [10, 5, 0])]
    )
    root = parse(svg)
    bars = root.findall(f"{SVG}rect[@class='bar s0']")
    assert [b.get("data-value") for b in bars] == ["10", "5", "0"]
    heights = [float(b.get("height", "nan")) for b in bars]
    assert heights[0] == pytest.approx(2 * heights[1]) and heights[2] == 0
    assert root.get("aria-label") == "Jobs per day"
    assert [t.text for t in root.findall(f"{SVG}text[@class='xlabel']")] == ["11-01", "11-02", "11-03"]


def test_grouped_bars_have_a_legend_and_one_bar_per_series_per_label() -> None:
    svg = bar_chart(
        title="Outcomes", labels=["a", "b"], series=[Series("failed", [1, 2]), Series("cancelled", [3, 0])]
    )
    root = parse(svg)
    assert len(root.findall(f"{SVG}rect[@class='bar s0']")) == 2
    assert len(root.findall(f"{SVG}rect[@class='bar s1']")) == 2
    assert [t.text for t in root.findall(f"{SVG}text[@class='legend']")] == ["failed", "cancelled"]


def test_labels_and_titles_are_escaped() -> None:
    svg = bar_chart(title='<script>"x"', labels=["<b>&"], series=[Series("a<b", [1])])
    root = parse(svg)  # parses: nothing broke out of its element
    assert "<script>" not in svg and "<b>" not in svg
    assert root.find(f"{SVG}title").text == '<script>"x"'


def test_many_labels_are_thinned() -> None:
    labels = [f"d{i}" for i in range(90)]
    root = parse(bar_chart(title="t", labels=labels, series=[Series("s", [1.0] * 90)]))
    assert 0 < len(root.findall(f"{SVG}text[@class='xlabel']")) <= 12
    assert len(root.findall(f"{SVG}rect[@class='bar s0']")) == 90


def test_empty_chart_says_so() -> None:
    root = parse(line_chart(title="t", labels=[], series=[Series("s", [])]))
    assert root.find(f"{SVG}text[@class='empty']").text == "No data for this selection"


def test_line_chart_points() -> None:
    root = parse(line_chart(title="t", labels=["a", "b", "c"], series=[Series("p95", [1.5, 3, 0])]))
    points = root.findall(f"{SVG}circle")
    assert [p.get("data-value") for p in points] == ["1.5", "3", "0"]
    ys = [float(p.get("cy", "nan")) for p in points]
    assert ys[1] < ys[0] < ys[2]  # higher values are higher up (smaller y)
    assert len(root.findall(f"{SVG}polyline")) == 1


def test_mismatched_series_is_an_error() -> None:
    with pytest.raises(ValueError, match="has 1 values for 2 labels"):
        bar_chart(title="t", labels=["a", "b"], series=[Series("s", [1])])
    with pytest.raises(ValueError, match="at least one series"):
        bar_chart(title="t", labels=["a"], series=[])


def test_no_inline_style_attributes() -> None:
    # The Content-Security-Policy forbids inline styles; presentation attributes are fine.
    svg = bar_chart(title="t", labels=["a"], series=[Series("s", [1]), Series("u", [2])])
    assert "style=" not in svg
