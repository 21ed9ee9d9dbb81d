"""Every metric the code emits is declared: an undeclared name raises at its first use, in the
middle of whatever emitted it (a heartbeat that counted itself failed, every time)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.telemetry import COUNTERS, HISTOGRAMS

ROOT = Path(__file__).resolve().parents[2]
EMITTED = re.compile(r"telemetry\.(count|observe)\(\s*\"([^\"]+)\"")


def test_every_metric_emitted_is_declared() -> None:
    emitted: dict[str, set[str]] = {"count": set(), "observe": set()}
    for folder in ("shared", "functions", "acctsync"):
        for path in (ROOT / folder).rglob("*.py"):
            for kind, name in EMITTED.findall(path.read_text()):
                emitted[kind].add(name)
    assert emitted["count"] and emitted["observe"]  # the pattern still finds the calls
    assert emitted["count"] <= COUNTERS.keys(), emitted["count"] - COUNTERS.keys()
    assert emitted["observe"] <= HISTOGRAMS.keys(), emitted["observe"] - HISTOGRAMS.keys()
