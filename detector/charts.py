"""Small inline SVG charts for the HTML report: a line chart over time and a histogram.

Written here rather than with a plotting library: the page must need no network and no script, a
chart is a few dozen SVG elements, and matplotlib would add a second of import time and a PNG per
chart for what a polyline does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

# Distinct, colour-blind-friendly series colours (Okabe-Ito), then repeats.
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
BAR_COLOUR = "#7B3FA0"
_PAD = (56, 16, 34, 30)  # left, right, bottom, top (px) around the plot area


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            ticks.append(round(v, 10))
        v += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:.2g}"


class _Frame:
    """Maps data to pixels inside a chart of ``width`` x ``height`` and draws its axes."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float]) -> None:
        self.width, self.height = width, height
        self.x0, self.x1 = x if x[1] > x[0] else (x[0], x[0] + 1.0)
        self.y0, self.y1 = y if y[1] > y[0] else (y[0], y[0] + 1.0)
        left, right, bottom, top = _PAD
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom

    def px(self, x: float, y: float) -> tuple[float, float]:
        fx = (x - self.x0) / (self.x1 - self.x0)
        fy = (y - self.y0) / (self.y1 - self.y0)
        return (self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top))

    def axes(self, x_label: str, y_label: str, xs: Sequence[float], ys: Sequence[float]) -> list[str]:
        out = []
        for v in ys:
            _, py = self.px(self.x0, v)
            out.append(f'<line x1="{self.left}" y1="{py:.1f}" x2="{self.right}" y2="{py:.1f}" class="grid"/>')
            out.append(f'<text x="{self.left - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
        for v in xs:
            px, _ = self.px(v, self.y0)
            out.append(f'<text x="{px:.1f}" y="{self.bottom + 16}" text-anchor="middle">{_fmt(v)}</text>')
        out.append(
            f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" y2="{self.bottom}" class="axis"/>'
        )
        out.append(f'<text x="{self.right}" y="{self.height - 4}" text-anchor="end">{escape(x_label)}</text>')
        out.append(f'<text x="{self.left}" y="{self.top - 12}" text-anchor="start">{escape(y_label)}</text>')
        return out


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def line_chart(
    times: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    y_label: str,
    x_label: str = "time (s)",
    step: bool = False,
    width: int = 960,
    height: int = 260,
) -> str:
    """One polyline per series over ``times``; ``step`` draws counts that change in steps."""
    values = [v for s in series.values() for v in s]
    if not times or not values:
        return ""
    frame = _Frame(width, height, (min(times), max(times)), (0.0, max(max(values), 1e-9) * 1.05))
    body = frame.axes(x_label, y_label, nice_ticks(frame.x0, frame.x1, 8), nice_ticks(0.0, frame.y1, 4))
    legend_x = frame.left + 7 * len(y_label) + 24  # after the axis label, on the same line
    for k, (name, ys) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        points: list[tuple[float, float]] = []
        for i, (t, y) in enumerate(zip(times, ys, strict=False)):
            if step and i:
                points.append(frame.px(t, ys[i - 1]))
            points.append(frame.px(t, y))
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        label = escape(name)
        body.append(f'<rect x="{legend_x}" y="{frame.top - 20}" width="14" height="5" fill="{colour}"/>')
        body.append(f'<text x="{legend_x + 18}" y="{frame.top - 12}">{label}</text>')
        legend_x += 28 + 7 * len(name)
    return _svg(width, height, title, body)


def histogram(
    values: Sequence[float],
    *,
    title: str,
    x_label: str,
    bins: int = 30,
    width: int = 960,
    height: int = 220,
) -> str:
    """Bars counting ``values`` in ``bins`` equal bins from 0 to just past their 99th percentile."""
    if not values:
        return ""
    ordered = sorted(values)
    top = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1.1 or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v / top * bins)))] += 1
    frame = _Frame(width, height, (0.0, top), (0.0, max(counts) * 1.05))
    body = frame.axes(x_label, "frames", nice_ticks(0.0, top, 8), nice_ticks(0.0, frame.y1, 4))
    for i, n in enumerate(counts):
        if n:
            x0, y0 = frame.px(top * i / bins, n)
            x1, y1 = frame.px(top * (i + 1) / bins, 0.0)
            body.append(
                f'<rect x="{x0 + 1:.1f}" y="{y0:.1f}" width="{max(1.0, x1 - x0 - 2):.1f}" '
                f'height="{y1 - y0:.1f}" fill="{BAR_COLOUR}"/>'
            )
    return _svg(width, height, title, body)
