"""The local host: what the Functions host does in Azure, on this machine and on Azurite.

It runs the heartbeat timer function every minute (the first at once), a queue worker that
calls the queue-triggered function, and prints a one-line summary of each finished cycle.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from azure.functions.timer import TimerRequest

from acctsync.progress import TerminalProgress
from acctsync.worker import QueueWorker
from functions.heartbeat import heartbeat_timer
from shared.services import Services, get_services

logger = logging.getLogger(__name__)
HEARTBEAT_S = 60.0


class LocalHost:
    def __init__(self, services: Services, *, heartbeat_s: float = HEARTBEAT_S, workers: int = 1):
        self.services = services
        self.heartbeat_s = heartbeat_s
        self.stop = threading.Event()
        self.nudge = threading.Event()
        self.progress = TerminalProgress()
        self.workers = [QueueWorker(services) for _ in range(workers)]
        for worker in self.workers:
            worker.progress = self.progress
        self._printed: set[str] = {c["cycle_id"] for c in services.history.latest(20)}

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)]
        threads += [
            threading.Thread(target=self._work, args=(w,), name=f"worker-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _heartbeats(self) -> None:
        while not self.stop.is_set():
            try:
                heartbeat_timer(TimerRequest(past_due=False))
                self._print_finished()
            except Exception:
                logger.exception("heartbeat failed; the next one retries")
            self.nudge.wait(self.heartbeat_s)
            self.nudge.clear()

    def _work(self, worker: QueueWorker) -> None:
        while not self.stop.is_set():
            try:
                seen = worker.run_once()
            except Exception:
                logger.exception("queue worker: storage unavailable, retrying")
                self.stop.wait(5.0)
                continue
            if not seen:
                if worker.applied:
                    self.nudge.set()  # the queue drained: let the heartbeat finish the cycle
                    worker.applied = 0
                self.stop.wait(1.0)

    def _print_finished(self) -> None:
        for summary in reversed(self.services.history.latest(5)):
            if summary["cycle_id"] not in self._printed:
                self._printed.add(summary["cycle_id"])
                print(f"cycle finished: {json.dumps(summary)}", flush=True)


def run_local_host() -> int:
    services = get_services()
    host = LocalHost(services)
    print("acctsync local host: heartbeat every minute, queue worker running", flush=True)

    def shutdown(*_: object) -> None:
        host.stop.set()
        host.nudge.set()

    signal.signal(signal.SIGTERM, shutdown)
    host.start()
    try:
        while not host.stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        shutdown()
    print("acctsync local host stopped", file=sys.stderr)
    return 0
