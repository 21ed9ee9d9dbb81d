"""Run one whole cycle now: plan it, apply every batch it enqueued, and finish it."""

from __future__ import annotations

import socket
import time
from typing import Any

from acctsync.progress import TerminalProgress
from acctsync.worker import QueueWorker
from shared.services import Services
from shared.sync.cycle import heartbeat


class CycleTimeout(RuntimeError):
    pass


def run_cycle_now(
    services: Services, *, progress: TerminalProgress | None = None, timeout_s: float = 3600
) -> dict[str, Any]:
    """The summary of a cycle started now, whatever the schedule says, once it has finished."""
    owner = f"cli-{socket.gethostname()}"
    worker = QueueWorker(services)
    worker.progress = progress
    started = False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outcome = heartbeat(services, owner=owner, force=not started, progress=progress)
        if outcome.action == "planned":
            started = True
        elif outcome.action == "finished" and started:
            if progress is not None:
                progress.done()
            return outcome.summary
        elif outcome.action == "busy":
            time.sleep(1.0)  # another host holds the lease; its cycle comes first
        worker.drain()
        if outcome.action == "waiting":
            time.sleep(0.5)  # messages in flight elsewhere, or waiting to be retried
    raise CycleTimeout(f"the cycle did not finish within {timeout_s:.0f}s")
