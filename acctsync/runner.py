"""Run one whole cycle now: plan it, apply every batch it enqueued, and finish it.

Queue workers apply batches on threads of their own while the heartbeats plan, as the
Functions host's queue trigger does while the timer plans, so a long load is applied as it
is read. A cycle another host is running comes first: this waits for it and says whose it is.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from typing import TextIO

from acctsync.progress import TerminalProgress
from acctsync.worker import QueueWorker
from shared.services import Services
from shared.state.audit_trail import Actor
from shared.state.results import CycleStatus
from shared.state.summary import CycleSummary
from shared.state.verify import VerifyResult
from shared.sync.cycle import Action, Heartbeat, heartbeat, queue_backlog
from shared.verify.requests import request_verify

WORKERS = 2


class CycleTimeout(RuntimeError):
    pass


class SyncPaused(RuntimeError):
    """The sync is paused: no cycle starts until it is resumed."""


class CycleFailed(RuntimeError):
    """The cycle's planning failed; what it had enqueued was applied."""

    def __init__(self, summary: CycleSummary):
        failure = summary.failure
        step = (failure.step.value if failure.step else "") if failure else None
        message = failure.message if failure else None
        fix = f". Fix: {failure.fix}" if failure and failure.fix else ""
        super().__init__(f"the cycle failed while planning {step}: {message}{fix}")
        self.summary = summary


def run_cycle_now(
    services: Services,
    *,
    progress: TerminalProgress | None = None,
    timeout_s: float = 24 * 3600,
    notices: TextIO | None = None,
) -> CycleSummary:
    """The summary of a cycle started now, whatever the schedule says, once it has finished.
    CycleFailed when its planning failed (its summary is on the exception)."""
    owner = f"cli-{socket.gethostname()}-{os.getpid()}"
    notices = notices or sys.stderr
    started = False
    told: tuple[str, str | None] | None = None
    deadline = time.monotonic() + timeout_s
    with _Appliers(services, progress) as appliers:
        appliers.start()
        while time.monotonic() < deadline:
            outcome = heartbeat(services, owner=owner, force=not started, progress=progress)
            if outcome.started or outcome.action in (
                Action.PLANNED,
                Action.CHECKPOINTED,
                Action.FAILED,
            ):
                started = True
            if outcome.action is Action.FINISHED and started and outcome.summary is not None:
                if progress is not None:
                    progress.done()
                if outcome.summary.status is CycleStatus.FAILED:
                    raise CycleFailed(outcome.summary)
                return outcome.summary
            if outcome.action is Action.PAUSED:
                since = services.pauses.get()
                raise SyncPaused(
                    "the sync is paused"
                    + (f" (since {since.since:%Y-%m-%d %H:%M} UTC)" if since else "")
                    + ": nothing was read; `acctsync resume` lets cycles start again"
                )
            _wait(outcome, notices, told)
            told = (outcome.lease_owner, outcome.lease_until)
    raise CycleTimeout(f"the cycle did not finish within {timeout_s:.0f}s")


def run_verify_now(
    services: Services,
    *,
    repair: bool,
    deep: bool,
    timeout_s: float = 24 * 3600,
    notices: TextIO | None = None,
) -> VerifyResult:
    """Ask for a verify and drive heartbeats until it has finished: a cycle under way is
    finished first (its batches applied here too), as the verify never overlaps one."""
    owner = f"cli-{socket.gethostname()}-{os.getpid()}"
    notices = notices or sys.stderr
    request, queued = request_verify(services, repair=repair, deep=deep, actor=Actor.cli())
    if not queued:
        print(f"acctsync: verify {request.id} was asked for already; waiting for it", file=notices)
    told: tuple[str, str | None] | None = None
    said_cycle = ""
    deadline = time.monotonic() + timeout_s
    # Workers only while a cycle is under way: a verify alone has no batches, and idle
    # workers would poll the queue all along it.
    with _Appliers(services) as appliers:
        while time.monotonic() < deadline:
            outcome = heartbeat(services, owner=owner)
            last = services.verifies.last()
            if last is not None and last.id == request.id:
                return last
            if outcome.action is Action.PAUSED and outcome.verify_id is None:
                raise SyncPaused(
                    "the sync is paused with a cycle under way: the verify starts once it has "
                    "finished; `acctsync resume` lets it go on"
                )
            cycle_on = outcome.action not in (Action.IDLE, Action.FINISHED)
            if cycle_on and outcome.verify_id is None:
                appliers.start()
            if cycle_on and outcome.verify_id is None and said_cycle != outcome.cycle_id:
                said_cycle = outcome.cycle_id
                print(
                    f"acctsync: cycle {outcome.cycle_id} is under way; the verify starts "
                    "once it has finished",
                    file=notices,
                    flush=True,
                )
            _wait(outcome, notices, told)
            told = (outcome.lease_owner, outcome.lease_until)
    raise CycleTimeout(f"the verify did not finish within {timeout_s:.0f}s")


def _wait(outcome: Heartbeat, notices: TextIO, told: tuple[str, str | None] | None) -> None:
    """Wait before the next heartbeat when this one could not go on: another host holds the
    lease (say whose, once), or batches are being applied."""
    if outcome.action is Action.BUSY:
        if outcome.lease_owner and told != (outcome.lease_owner, outcome.lease_until):
            print(
                f"acctsync: waiting for cycle {outcome.cycle_id}: its lease is held by "
                f"{outcome.lease_owner} until {outcome.lease_until} (a crashed planner's lease "
                "runs out then, and this goes on from its checkpoint)",
                file=notices,
                flush=True,
            )
        time.sleep(1.0)
    if outcome.action is Action.WAITING:
        time.sleep(0.2)  # batches being applied, here or elsewhere


class _Appliers:
    """Queue workers on threads, started when batches may come, stopped at the block's end."""

    def __init__(self, services: Services, progress: TerminalProgress | None = None):
        self.services = services
        self.progress = progress
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.threads:
            return
        if self.progress is not None:  # before any worker takes one: what waits is to apply
            self.progress.queued_before(queue_backlog(self.services))
        for number in range(WORKERS):
            worker = QueueWorker(self.services)
            worker.progress = self.progress
            thread = threading.Thread(
                target=worker.serve,
                args=(self.stop,),
                kwargs={"idle_wait_s": 0.1},
                name=f"apply-{number}",
            )
            thread.start()
            self.threads.append(thread)

    def __enter__(self) -> _Appliers:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
