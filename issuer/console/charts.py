"""Chart geometry for server-rendered SVG: lines over time, horizontal bars.

The console draws its charts as inline SVG from the server, with no script: the pages
work offline and under a CSP that admits no script at all, the numbers stay in the
markup (each point carries ``data-*`` attributes and a ``<title>`` tooltip, and a table
beside each chart holds them for screen readers), and nothing is vendored to keep up to
date. The templates (``_charts.html``) draw what these functions compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 960
HEIGHT = 200
PAD_LEFT = 48
PAD_BOTTOM = 24
PAD_TOP = 12


@dataclass(frozen=True)
class Point:
    """One non-zero value of a series, placed on the chart."""

    x: float
    y: float
    value: int
    label: str


@dataclass(frozen=True)
class Line:
    """One series: its name, CSS class, polyline and non-zero points."""

    name: str
    css: str
    points: str
    marks: list[Point]
    total: int


@dataclass(frozen=True)
class LineChart:
    """A chart of several series over the same x labels."""

    lines: list[Line]
    top: int
    ticks: list[tuple[float, str]]
    grid: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_LEFT
    bottom: float = HEIGHT - PAD_BOTTOM


def _nice_top(value: int) -> int:
    """Return the smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value``."""
    top = 1
    while top < value:
        top = top * 5 // 2 if str(top)[0] == "2" else top * 2
    return top


def line_chart(
    series: Sequence[tuple[str, str, Sequence[int]]],
    labels: Sequence[str],
    *,
    tick_every: int,
) -> LineChart:
    """Place ``series`` (name, CSS class, one value per label) on a shared scale."""
    count = max(len(labels), 1)
    top = _nice_top(max((max(values, default=0) for _, _, values in series), default=0))
    span_x = WIDTH - PAD_LEFT - 8
    span_y = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = span_x / max(count - 1, 1)

    def place(i: int, value: int) -> tuple[float, float]:
        return (
            round(PAD_LEFT + i * step, 1),
            round(HEIGHT - PAD_BOTTOM - span_y * value / top, 1),
        )

    lines = []
    for name, css, values in series:
        coords = [place(i, v) for i, v in enumerate(values)]
        marks = [Point(*place(i, v), value=v, label=labels[i]) for i, v in enumerate(values) if v]
        points = " ".join(f"{x},{y}" for x, y in coords)
        lines.append(Line(name, css, points, marks, sum(values)))
    ticks = [(place(i, 0)[0], labels[i]) for i in range(0, count, max(tick_every, 1))]
    grid = [(place(0, v)[1], str(v)) for v in (0, top // 2, top) if v or top == 1]
    return LineChart(lines=lines, top=top, ticks=ticks, grid=grid)


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, value and width in percent of the widest."""

    label: str
    value: int
    percent: float


def bar_chart(rows: Sequence[tuple[str, int]]) -> list[Bar]:
    """Scale ``rows`` (label, value) to the largest value."""
    widest = max((value for _, value in rows), default=0) or 1
    return [Bar(label, value, round(100 * value / widest, 1)) for label, value in rows]
