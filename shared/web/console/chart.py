"""The Sync Status chart, drawn on the server as inline SVG (no chart library, nothing
fetched): records synced per cycle as bars, and the change lag (how long after its change in
Dynamics a row reached the mirror) as a line with its own scale. The time axis is the whole
window asked for, each cycle placed at its start, so its two ends are the window's ends; both
value axes say their unit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 960, 240
# Room for the axes' labels, units included, inside the drawing (nothing clipped).
LEFT, RIGHT, TOP, BOTTOM = 96, 96, 24, 40
BAR_MAX = 12


@dataclass(frozen=True)
class Point:
    started: datetime
    records: int
    lag_s: float | None  # the mean lag of the cycle's changes; None: it read none


@dataclass(frozen=True)
class Window:
    """The span the time axis covers."""

    since: datetime
    until: datetime

    def fraction(self, moment: datetime) -> float:
        span = (self.until - self.since).total_seconds()
        return min(max((moment - self.since).total_seconds() / span, 0.0), 1.0) if span else 1.0


def chart(points: list[Point], *, window: Window) -> Markup:
    if not points:
        return Markup('<p class="muted">No finished cycle in the last days yet.</p>')
    points = sorted(points, key=lambda p: p.started)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h
    most = max(max(p.records for p in points), 1)
    lags = [p.lag_s for p in points if p.lag_s is not None]
    slowest = max(max(lags, default=0.0), 1.0)
    bar = max(min(plot_w / len(points) * 0.7, BAR_MAX), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Records synced per cycle and change lag">',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{LEFT + plot_w}" y2="{bottom}" stroke="#888"/>',
        _label(LEFT - 6, TOP + 4, f"{most:,} records", "axis records", "end"),
        _label(LEFT - 6, bottom, "0 records", "axis records", "end"),
        _label(LEFT + plot_w + 6, TOP + 4, f"{_duration(slowest)} lag", "axis lag", "start"),
        _label(LEFT + plot_w + 6, bottom, "0 s lag", "axis lag", "start"),
    ]
    line: list[str] = []
    for point in points:
        x = LEFT + plot_w * window.fraction(point.started) - bar / 2
        h = plot_h * point.records / most
        label = escape(
            f"{point.started:%Y-%m-%d %H:%M} UTC: {point.records:,} records"
            + (f", change lag {_duration(point.lag_s)}" if point.lag_s is not None else "")
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'class="bar"><title>{label}</title></rect>'
        )
        if point.lag_s is not None:
            line.append(f"{x + bar / 2:.1f},{bottom - plot_h * point.lag_s / slowest:.1f}")
    if line:
        parts.append(f'<polyline points="{" ".join(line)}" class="lagline" fill="none"/>')
        for xy in line:
            cx, cy = xy.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" class="lagdot"/>')
    since, until = (f"{t:%Y-%m-%d %H:%M} UTC" for t in (window.since, window.until))
    parts += [
        _label(LEFT, HEIGHT - 12, since, "axis time", "start"),
        _label(LEFT + plot_w, HEIGHT - 12, until, "axis time", "end"),
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704 (numbers and escaped labels only)


def _label(x: float, y: float, text: str, css: str, anchor: str) -> str:
    return f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}" class="{css}">{text}</text>'


def _duration(seconds: float) -> str:
    """A lag with its unit, in the unit that keeps it short."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.1f} days"
