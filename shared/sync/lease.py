"""The lease a planning heartbeat holds on the cycle row.

Every write it makes (checkpoints, counts, the end of a step) is conditional on the row being
as this heartbeat last wrote it, so a planner whose lease was taken over by another heartbeat
stops at its next write without committing anything. While it plans, a thread renews the
lease every third of its length, so a page that waits minutes on Dataverse's Retry-After does
not lose it; a planner that dies stops renewing, and its lease runs out a lease-length later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, TypedDict

from shared.errors import AcctsyncError
from shared.state.schedule import (
    Checkpoint,
    CyclePlan,
    CycleSchedule,
    CycleState,
    Failure,
    Phase,
    Step,
)
from shared.times import utcnow

if TYPE_CHECKING:  # annotations only: nothing needs it when the code runs
    from typing_extensions import Unpack

logger = logging.getLogger(__name__)


class LeaseLost(AcctsyncError, RuntimeError):
    """Another heartbeat took the cycle over (this one's lease ran out): nothing to do, the
    heartbeat holding it goes on from the last checkpoint."""


class CycleChanges(TypedDict, total=False):
    """The fields of the cycle's state a lease holder may change (each one optional)."""

    phase: Phase
    step: Step | None
    plan: CyclePlan
    checkpoints: dict[str, Checkpoint]
    failure: Failure | None
    last_failure: Failure | None


class CycleLease:
    def __init__(self, schedule: CycleSchedule, state: CycleState, *, duration: timedelta):
        self._schedule = schedule
        self.state = state
        self.duration = duration
        self._lock = threading.Lock()
        self._written = time.monotonic()
        self.lost = False

    def write(self, **changes: Unpack[CycleChanges]) -> None:
        """Store the state with `changes` and a renewed lease; LeaseLost if it was taken."""
        self._store(changes, released=False)

    def _store(self, changes: CycleChanges, *, released: bool) -> None:
        with self._lock:
            if self.lost:
                raise LeaseLost(f"cycle {self.state.cycle_id} lost its lease")
            now = utcnow()
            changed = replace(self.state, progress_at=now, **changes)
            candidate = (
                replace(changed, lease_owner="", lease_until=None)
                if released
                else replace(changed, lease_until=now + self.duration)
            )
            if not self._schedule.write(candidate):
                self.lost = True
                raise LeaseLost(f"cycle {self.state.cycle_id} lost its lease to another heartbeat")
            self.state = candidate
            self._written = time.monotonic()

    def renew(self) -> None:
        self.write()

    def stage(self, **changes: Unpack[CycleChanges]) -> None:
        """Changes the next write stores (losing them in a crash before it loses nothing)."""
        with self._lock:
            self.state = replace(self.state, **changes)

    def release(self, **changes: Unpack[CycleChanges]) -> None:
        """Give the lease back, so the next heartbeat goes on at once (not a lease later)."""
        self._store(changes, released=True)

    @contextmanager
    def kept(self) -> Iterator[CycleLease]:
        """Renew the lease in the background for as long as the block runs."""
        stop = threading.Event()
        every = self.duration.total_seconds() / 3

        def keep() -> None:
            while not stop.wait(every / 4):
                if time.monotonic() - self._written < every:
                    continue
                try:
                    self.renew()
                except LeaseLost:
                    logger.warning("cycle %s: lease lost while planning", self.state.cycle_id)
                    return
                except Exception:  # storage briefly unreachable: try again a little later
                    logger.warning("cycle %s: renewing the lease failed", self.state.cycle_id)

        keeper = threading.Thread(target=keep, name="lease-keeper", daemon=True)
        keeper.start()
        try:
            yield self
        finally:
            stop.set()
            keeper.join(timeout=5)
