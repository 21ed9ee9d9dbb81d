"""A rate on the progress line is the rate things were counted at, not one that decays while
the count waits: a table read whole at 2,000 rows/s still says so while its batches apply."""

from __future__ import annotations

import pytest

from acctsync import progress


def test_a_rate_keeps_what_it_was_counted_at_once_counting_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("acctsync.progress.time.monotonic", lambda: clock[0])
    counter = progress._Counter("contacts (initial)", 30_000, started=clock[0])
    for _ in range(15):  # 30,000 rows over 15 s
        clock[0] += 1.0
        counter.advance(2_000)
    assert counter.rate() == pytest.approx(2_000)
    clock[0] += 60.0  # the batches apply for a minute: nothing more is read
    assert counter.rate() == pytest.approx(2_000)
    assert "(2,000/s)" in counter.line("rows read")
    assert progress._Counter("batches applied", 10).rate() == 0.0  # nothing counted yet
