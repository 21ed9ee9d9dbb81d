"""Progress of long work (a first load, a re-load, a backfill) on the terminal.

Per table: rows read of the table's total (Dataverse's RetrieveTotalRecordCount), then the
batches applied of those to apply, each with its rate and the time left. The batches to apply
are those this process sent plus those already queued when it began (a cycle resumed after a
restart: its workers apply them too), so after a restart the counts still end equal. A total
that turns out smaller than what was done (a stale row count) is shown as unknown rather than
as "265 of 100". On a terminal these are rich progress bars; otherwise (logs, CI) one plain
line per interval. The counters start again after each finished cycle.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from shared.state.schedule import LoadMode


@dataclass
class _Counter:
    """One thing being counted: rows read of a table, or batches applied."""

    label: str
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    counted_from: int = 0  # done when counting began here (a load resumed from a checkpoint)
    # When the last one was counted: the rate is over the time counting went on, so a table
    # read whole keeps the rate it was read at while its batches are applied.
    last: float | None = None

    def advance(self, count: int) -> None:
        self.done += count
        self.last = time.monotonic()

    def rate(self) -> float:
        elapsed = (self.last or self.started) - self.started
        return (self.done - self.counted_from) / elapsed if elapsed > 0.5 else 0.0

    @property
    def known_total(self) -> int | None:
        """The total, unless it is below what was done already (then it was wrong)."""
        return self.total if self.total and self.total >= self.done else None

    def line(self, unit: str) -> str:
        total = self.known_total
        of = f" of {total:,}" if total else ""
        text = f"{self.label}: {self.done:,}{of} {unit}"
        rate = self.rate()
        if rate:
            text += f" ({rate:,.0f}/s"
            if total and total > self.done:
                text += f", about {(total - self.done) / rate:,.0f} s left"
            text += ")"
        return text


class TerminalProgress:
    def __init__(
        self, stream: TextIO | None = None, *, every_s: float = 10.0, terminal: bool | None = None
    ):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.every_s = every_s
        self._lock = threading.Lock()
        self._bars: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._reset()

    def _reset(self) -> None:
        self._tables: dict[str, _Counter] = {}
        self._batches = _Counter("batches applied", 0)
        self._last_line = 0.0

    # -- what the planner and the workers report ---------------------------------------------

    def started(self, entity_set: str, mode: LoadMode, *, total: int | None, done: int) -> None:
        with self._lock:
            label = f"{entity_set} ({mode.value})"
            self._tables[entity_set] = _Counter(label, total, done, counted_from=done)
            self._show(entity_set)

    def read(self, entity_set: str, rows: int) -> None:
        with self._lock:
            counter = self._tables.setdefault(entity_set, _Counter(entity_set, None))
            counter.advance(rows)
            self._show(entity_set)

    def queued_before(self, batches: int) -> None:
        """Batches waiting on the queue before this process sent any: it applies them too."""
        with self._lock:
            self._batches.total = (self._batches.total or 0) + batches

    def enqueued(self, batches: int, records: int) -> None:
        with self._lock:
            self._batches.total = (self._batches.total or 0) + batches
            self._show("batches")

    def batch_applied(self) -> None:
        with self._lock:
            self._batches.advance(1)
            self._show("batches")

    def done(self) -> None:
        """The cycle finished: close the bars (or say the last line) and start again."""
        with self._lock:
            if self._bars is not None:
                self._bars.stop()
                self._bars, self._tasks = None, {}
            elif self._last_line:
                self._print_lines()
            self._reset()

    # -- drawing -----------------------------------------------------------------------------

    def _show(self, key: str) -> None:
        if self.terminal:
            self._draw(key)
        elif time.monotonic() - self._last_line >= self.every_s:
            self._print_lines()

    def _draw(self, key: str) -> None:
        if self._bars is None:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream, force_terminal=True),
                transient=False,
            )
            self._bars.start()
        counter = self._batches if key == "batches" else self._tables[key]
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self._bars.add_task(
                counter.label, total=counter.known_total, rate=""
            )
        rate = counter.rate()
        self._bars.update(
            task,
            completed=counter.done,
            total=counter.known_total,
            rate=f"{rate:,.0f}/s" if rate else "",
        )

    def _print_lines(self) -> None:
        self._last_line = time.monotonic()
        parts = [c.line("rows read") for c in self._tables.values()]
        if self._batches.total or self._batches.done:
            parts.append(self._batches.line(""))
        if parts:
            self.stream.write("; ".join(p.rstrip() for p in parts) + "\n")
            self.stream.flush()
