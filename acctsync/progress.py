"""Progress of long work on the terminal: rows read, records applied, rate and time left."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class TerminalProgress:
    """At most one status line a second on stderr while a cycle reads and applies; the
    counters start again after each finished cycle."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 1.0):
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._start = time.monotonic()
        self._first_applied: float | None = None
        self._last_print = 0.0
        self.rows_read = 0
        self.records_enqueued = 0
        self.batches_enqueued = 0
        self.batches_applied = 0

    def read(self, entity_set: str, rows: int) -> None:
        with self._lock:
            self.rows_read += rows
            self._maybe_print(f"reading {entity_set}")

    def enqueued(self, batches: int, records: int) -> None:
        with self._lock:
            self.batches_enqueued += batches
            self.records_enqueued += records

    def batch_applied(self) -> None:
        with self._lock:
            if self._first_applied is None:
                self._first_applied = time.monotonic()
            self.batches_applied += 1
            self._maybe_print("applying")

    def done(self) -> None:
        with self._lock:
            if self._last_print:
                self.stream.write("\n")
                self.stream.flush()
            self._reset()

    def _maybe_print(self, phase: str) -> None:
        now = time.monotonic()
        if now - self._last_print < self.every_s:
            return
        self._last_print = now
        elapsed = max(now - self._start, 1e-6)
        line = f"{phase}: read {self.rows_read:,} rows ({self.rows_read / elapsed:,.0f}/s)"
        applying_for = now - self._first_applied if self._first_applied is not None else 0.0
        if self.batches_enqueued and applying_for >= 1.0:  # a rate needs a second to mean much
            share = min(self.batches_applied / self.batches_enqueued, 1.0)
            applied = int(self.records_enqueued * share)
            line += (
                f" · applied ~{applied:,}/{self.records_enqueued:,} records"
                f" ({applied / applying_for:,.0f}/s)"
            )
            left = self.batches_enqueued - self.batches_applied
            if left > 0:
                line += f" · ~{left * applying_for / self.batches_applied:,.0f}s left"
        self.stream.write("\r" + line.ljust(110))
        self.stream.flush()
