"""Prometheus text format: HELP/TYPE lines, label escaping, cumulative histogram buckets."""

from __future__ import annotations

import math

import pytest

from jobs.metrics import Histogram, Sample, counter, format_value, gauge, render


def test_gauge_with_labels_and_escaping() -> None:
    text = render(
        [gauge("imagine_jobs", 'Jobs by "status"\nnow', [Sample(3, {"status": 'qu"e\\ued\n'}), Sample(0.5)])]
    )
    assert text == (
        '# HELP imagine_jobs Jobs by "status"\\nnow\n'
        "# TYPE imagine_jobs gauge\n"
        'imagine_jobs{status="qu\\"e\\\\ued\\n"} 3\n'
        "imagine_jobs 0.5\n"
    )


def test_counter_needs_total_suffix() -> None:
    assert render([counter("imagine_x_total", "x", 2)]).endswith("imagine_x_total 2\n")
    with pytest.raises(ValueError, match="_total"):
        counter("imagine_x", "x", 1)


def test_histogram_buckets_are_cumulative() -> None:
    text = render([Histogram.observe("imagine_render_seconds", "h", (1.0, 5.0), [0.5, 1.0, 3.0, 7.0])])
    assert text.splitlines()[2:] == [
        'imagine_render_seconds_bucket{le="1"} 2',
        'imagine_render_seconds_bucket{le="5"} 3',
        'imagine_render_seconds_bucket{le="+Inf"} 4',
        "imagine_render_seconds_sum 11.5",
        "imagine_render_seconds_count 4",
    ]


def test_invalid_names_are_refused() -> None:
    with pytest.raises(ValueError, match="metric name"):
        render([gauge("bad-name", "x", 1)])
    with pytest.raises(ValueError, match="label name"):
        render([gauge("ok", "x", [Sample(1, {"bad-label": "v"})])])


def test_format_value() -> None:
    assert [format_value(v) for v in (1.0, 2, 0.25, math.inf, -math.inf)] == [
        "1",
        "2",
        "0.25",
        "+Inf",
        "-Inf",
    ]
    assert format_value(math.nan) == "NaN"


def test_histogram_refuses_non_cumulative_counts() -> None:
    with pytest.raises(ValueError, match="cumulative"):
        render([Histogram("h", "h", [(1.0, 3), (2.0, 1)], 0.0, 3)])
