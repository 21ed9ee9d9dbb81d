"""The Sync Status chart, drawn on the server as inline SVG (no chart library, nothing
fetched): records synced per cycle as bars, and the change lag (how long after its change in
Dynamics a row reached the mirror) as a line with its own scale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 56, 16, 36


@dataclass(frozen=True)
class Point:
    started: datetime
    records: int
    lag_s: float | None  # the mean lag of the cycle's rows; None: it wrote none


def chart(points: list[Point]) -> Markup:
    if not points:
        return Markup('<p class="muted">No finished cycle in the last days yet.</p>')
    points = sorted(points, key=lambda p: p.started)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    most = max(max(p.records for p in points), 1)
    lags = [p.lag_s for p in points if p.lag_s is not None]
    slowest = max(max(lags, default=0.0), 1.0)
    step = plot_w / len(points)
    bar = max(min(step * 0.7, 40), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Records synced per cycle and change lag">',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#888"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" class="axis">{most:,}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" class="axis">0</text>',
        f'<text x="{LEFT + plot_w + 6}" y="{TOP + 10}" class="axis lag">{_seconds(slowest)}</text>',
        f'<text x="{LEFT + plot_w + 6}" y="{TOP + plot_h}" class="axis lag">0 s</text>',
    ]
    line: list[str] = []
    for i, point in enumerate(points):
        x = LEFT + step * i + (step - bar) / 2
        h = plot_h * point.records / most
        label = escape(
            f"{point.started:%Y-%m-%d %H:%M} UTC: {point.records:,} records"
            + (f", lag {_seconds(point.lag_s)}" if point.lag_s is not None else "")
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'class="bar"><title>{label}</title></rect>'
        )
        if point.lag_s is not None:
            y = TOP + plot_h - plot_h * point.lag_s / slowest
            line.append(f"{x + bar / 2:.1f},{y:.1f}")
    if line:
        parts.append(f'<polyline points="{" ".join(line)}" class="lagline" fill="none"/>')
        for xy in line:
            cx, cy = xy.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" class="lagdot"/>')
    first, last = points[0].started, points[-1].started
    parts += [
        f'<text x="{LEFT}" y="{HEIGHT - 12}" class="axis">{first:%Y-%m-%d %H:%M}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 12}" text-anchor="end" class="axis">'
        f"{last:%Y-%m-%d %H:%M} UTC</text>",
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704 (numbers and escaped labels only)


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
