"""Progress of long work on the terminal: rows read, batches applied, rate and time left."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


class TerminalProgress:
    """Prints at most one status line a second to stderr while a cycle reads and applies."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 1.0):
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last_print = 0.0
        self.rows_read = 0
        self.records_enqueued = 0
        self.batches_enqueued = 0
        self.batches_applied = 0
        self._planned = False

    def read(self, entity_set: str, rows: int) -> None:
        with self._lock:
            self.rows_read += rows
            self._maybe_print(f"reading {entity_set}")

    def enqueued(self, batches: int, records: int) -> None:
        with self._lock:
            self.batches_enqueued += batches
            self.records_enqueued += records

    def planned(self, plan: dict[str, Any]) -> None:
        with self._lock:
            self._planned = True
            self._apply_start = time.monotonic()
            self._applied_at_plan = self.batches_applied

    def batch_applied(self) -> None:
        with self._lock:
            self.batches_applied += 1
            self._maybe_print("applying")

    def done(self) -> None:
        with self._lock:
            if self._last_print:
                self.stream.write("\n")
                self.stream.flush()

    def _maybe_print(self, phase: str) -> None:
        now = time.monotonic()
        if now - self._last_print < self.every_s:
            return
        self._last_print = now
        elapsed = max(now - self._start, 1e-6)
        line = f"{phase}: read {self.rows_read:,} rows ({self.rows_read / elapsed:,.0f}/s)"
        if self.batches_enqueued:
            share = self.batches_applied / self.batches_enqueued
            applied = int(self.records_enqueued * share)
            line += f" · applied ~{applied:,}/{self.records_enqueued:,} records"
            line += f" ({applied / elapsed:,.0f}/s)"
            if self._planned and self.batches_applied > self._applied_at_plan:
                spent = now - self._apply_start
                done = self.batches_applied - self._applied_at_plan
                left = (self.batches_enqueued - self.batches_applied) * spent / done
                line += f" · ~{left:,.0f}s left"
        self.stream.write("\r" + line.ljust(100))
        self.stream.flush()
