"""The local host: what the Functions host does in Azure, on this machine and on Azurite.

It runs the heartbeat timer function every 30 s (the first at once, the next at once after a
heartbeat that left planning at a checkpoint), a queue worker that
calls the queue-triggered function, and prints a one-line summary of each finished cycle.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from acctsync.console_telemetry import configure_from_env
from acctsync.ports import API_HOST, API_PORT, ApiPortError, api_port, wait_for_port
from acctsync.progress import TerminalProgress
from acctsync.worker import QueueWorker
from functions.heartbeat import run_heartbeat
from shared.services import Services, get_services
from shared.state.schedule import LoadMode, Phase
from shared.state.summary import CycleSummary
from shared.sync.cycle import queue_backlog, report_progress_to, stop_planning_on
from shared.times import utcnow
from shared.web.app import asgi_app
from shared.web.guards import require_key

logger = logging.getLogger(__name__)
HEARTBEAT_S = 30.0  # as the timer trigger's schedule


def api_server(api_key: str, *, port: int = API_PORT) -> uvicorn.Server:
    """The same ASGI app Azure serves: the API behind the key check Azure's function keys
    do, the console (at /) behind its own sign-in with the same key."""
    config = uvicorn.Config(
        require_key(asgi_app(api_key=api_key), api_key, prefix="/api"),
        host=API_HOST,
        port=port,
        log_level="warning",
        lifespan="off",
    )
    return uvicorn.Server(config)


@contextmanager
def serving_api(api_key: str, *, port: int) -> Iterator[str]:
    """The API server in a background thread for as long as the block runs; yields its URL."""
    server = api_server(api_key, port=port)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield f"http://{API_HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class LocalHost:
    def __init__(
        self,
        services: Services,
        *,
        api_key: str,
        api_port: int = API_PORT,
        heartbeat_s: float = HEARTBEAT_S,
        workers: int = 2,
    ):
        self.services = services
        self.api = api_server(api_key, port=api_port)
        self.heartbeat_s = heartbeat_s
        self.stop = threading.Event()
        self.nudge = threading.Event()
        self.progress = TerminalProgress()
        report_progress_to(self.progress)
        stop_planning_on(self.stop)
        self.workers = [QueueWorker(services) for _ in range(workers)]
        for worker in self.workers:
            worker.progress = self.progress
        self._printed: set[str] = {c.cycle_id for c in services.history.latest(20)}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        # Before any worker takes one: what a stopped host left queued counts as to apply.
        self.progress.queued_before(queue_backlog(self.services))
        self._threads = [
            threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True),
            threading.Thread(target=self.api.run, name="api", daemon=True),
        ]
        self._threads += [
            threading.Thread(target=self._work, args=(w,), name=f"worker-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def shutdown(self, *, timeout_s: float = 20.0) -> None:
        """Stop as the Functions host drains: planning ends at the next page, checkpointed and
        with its lease given back; workers finish the batch at hand and give back the rest."""
        self.stop.set()
        self.nudge.set()
        self.api.should_exit = True
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.release()  # a worker still inside a batch: its messages come back at once

    def _heartbeats(self) -> None:
        while not self.stop.is_set():
            try:
                run_heartbeat(past_due=False, every_s=self.heartbeat_s)
                self._print_finished()
                state = self.services.schedule.read()
                if (
                    state.phase in (Phase.PLANNING, Phase.VERIFYING)
                    and not state.lease_held(utcnow())
                    and not self.stop.is_set()
                ):
                    continue  # a load (or a verify) over several heartbeats goes on at once
            except Exception as error:
                # The heartbeat says why a planning step failed itself; this is the rest
                # (storage unreachable before it could): one line, traceback at --verbose.
                logger.error("heartbeat failed: %s; the next one retries", _first_line(error))
                logger.debug("heartbeat failure", exc_info=error)
            self.nudge.wait(self.heartbeat_s)
            self.nudge.clear()

    def _work(self, worker: QueueWorker) -> None:
        worker.stopping = self.stop
        while not self.stop.is_set():
            try:
                seen = worker.run_once()
            except Exception as error:
                logger.error("queue worker: %s; retrying", _first_line(error))
                self.stop.wait(5.0)
                continue
            if not seen:
                if worker.applied:
                    self.nudge.set()  # the queue drained: let the heartbeat finish the cycle
                    worker.applied = 0
                self.stop.wait(1.0)
        worker.release()

    def _print_finished(self) -> None:
        for summary in reversed(self.services.history.latest(5)):
            if summary.cycle_id not in self._printed:
                self._printed.add(summary.cycle_id)
                self.progress.done()
                print(cycle_line(summary), flush=True)


def cycle_line(summary: CycleSummary) -> str:
    """A finished cycle in one short line (`acctsync status` has the whole summary)."""
    tables = ", ".join(
        f"{changed:,} {name}"
        + (f" ({mode})" if (mode := summary.modes.get(name)) != LoadMode.DELTA else "")
        for name, changed in (
            ("contacts", summary.contacts_changed),
            ("accounts", summary.accounts_changed),
        )
    )
    line = (
        f"cycle {summary.status} in {summary.duration_s or 0:.1f} s: {tables} changed; "
        f"{summary.activities_logged:,} activities"
    )
    if summary.activities_suppressed:
        line += f" ({summary.activities_suppressed:,} suppressed)"
    if summary.deleted:
        line += f"; {summary.deleted:,} flagged deleted"
    line += f"; {summary.errors} errors"
    if failure := summary.failure:
        line += f" — {failure.message}. Fix: {failure.fix}"
    return line


def address_banner(port: int) -> str:
    """Where the host answers, set apart from the lines around it: the first thing to find."""
    rule = "=" * 72
    return "\n".join(
        [
            rule,
            f"admin console: http://{API_HOST}:{port}/ (sign in with the ACCTSYNC_API_KEY above)",
            f"JSON API:      http://{API_HOST}:{port}/api (header x-functions-key)",
            rule,
        ]
    )


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def run_local_host() -> int:
    try:
        port = api_port()
    except ApiPortError as error:
        print(f"acctsync run: {error}", file=sys.stderr)
        return 2
    if configure_from_env():
        print("telemetry: spans and metrics go to the console", flush=True)
    services = get_services()
    api_key = os.environ.get("ACCTSYNC_API_KEY") or secrets.token_urlsafe(24)
    if "ACCTSYNC_API_KEY" not in os.environ:
        print(f"ACCTSYNC_API_KEY={api_key} (generated; set it to keep one)", flush=True)
    # Dev only: tests cannot wait 30 s per heartbeat.
    heartbeat_s = float(os.environ.get("ACCTSYNC_HEARTBEAT_SECONDS") or HEARTBEAT_S)
    host = LocalHost(services, api_key=api_key, api_port=port, heartbeat_s=heartbeat_s)
    print(
        f"acctsync local host: heartbeat every {heartbeat_s:g}s, queue worker running",
        flush=True,
    )
    print(address_banner(port), flush=True)
    stopped = threading.Event()
    # A closed terminal (SIGHUP) stops as `kill` does: Azurite and the simulator, in sessions
    # of their own, would otherwise outlive `make run`.
    for stopping in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stopping, lambda *_: stopped.set())
    host.start()
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print(
        "acctsync local host: stopping (planning checkpointed, batches given back)...",
        file=sys.stderr,
        flush=True,
    )
    host.shutdown()
    print("acctsync local host stopped", file=sys.stderr)
    return 0
