"""The local queue worker: what the Functions host does for the queue trigger, on Azurite.

It calls the same function Azure calls, and reproduces the host's retry rules from host.json:
a failed message becomes visible again after `visibilityTimeout`, and after `maxDequeueCount`
failed attempts it moves to the poison queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage

from acctsync.holding import MessageHolder
from functions.apply_batch import apply_batch_message
from shared.queues import HOST_JSON
from shared.services import Services
from shared.storage import BATCH_QUEUE, POISON_QUEUE

logger = logging.getLogger(__name__)


class BatchProgress(Protocol):
    def batch_applied(self) -> None: ...


@dataclass(frozen=True)
class QueueRules:
    max_dequeue_count: int = 5
    visibility_timeout_s: int = 30
    batch_size: int = 8

    @classmethod
    def from_host_json(cls, path: Path = HOST_JSON) -> QueueRules:
        queues = json.loads(path.read_text())["extensions"]["queues"]
        hours, minutes, seconds = (int(p) for p in queues["visibilityTimeout"].split(":"))
        return cls(
            max_dequeue_count=int(queues["maxDequeueCount"]),
            visibility_timeout_s=hours * 3600 + minutes * 60 + seconds,
            batch_size=int(queues["batchSize"]),
        )


class QueueWorker:
    # A message stays invisible this long after it is received, and the worker renews that
    # while it holds the message (acctsync/holding.py): a worker that dies gives its batches
    # back about this long after its last renewal. ACCTSYNC_WORKER_LEASE_SECONDS shortens it
    # for fault tests (dev only; in Azure the Functions host owns the visibility).
    VISIBILITY_S = 60

    def __init__(self, services: Services, rules: QueueRules | None = None):
        self.services = services
        self.rules = rules or QueueRules.from_host_json()
        self.queue = services.storage.queue(BATCH_QUEUE)
        self.poison = services.storage.queue(POISON_QUEUE)
        self.applied = 0
        self.failed = 0
        self.progress: BatchProgress | None = None
        self.lease_s = int(os.environ.get("ACCTSYNC_WORKER_LEASE_SECONDS") or self.VISIBILITY_S)
        # Called with ("applying" | "applied" | "failed", message id): `acctsync worker`
        # prints these so a supervisor can tell where a kill landed.
        self.on_event: Callable[[str, str], None] | None = None
        # Received and not yet finished: renewed while held, given back when the worker stops.
        self.holder = MessageHolder(self.queue, services.liveness, visibility_s=self.lease_s)
        self.stopping = threading.Event()

    def run_once(self) -> int:
        """Receive and handle up to one host batch of messages; returns how many it saw."""
        messages = list(
            self.queue.receive_messages(
                messages_per_page=self.rules.batch_size,
                max_messages=self.rules.batch_size,
                visibility_timeout=self.lease_s,
            )
        )
        self.holder.take(messages)
        for message in messages:
            if self.stopping.is_set():
                break  # the rest is given back by release()
            body: bytes = message.content
            self._event("applying", message.id)
            try:
                # The host's own message type: the trigger reads dequeue_count from it.
                apply_batch_message(
                    QueueMessage(  # type: ignore[no-untyped-call]
                        id=message.id, body=body, dequeue_count=message.dequeue_count
                    )
                )
            except Exception as error:
                self._failed(message.id, body, message.dequeue_count or 0, error)
                continue
            self.holder.delete(message.id)
            self._event("applied", message.id)
            self.applied += 1
            if self.progress is not None:
                self.progress.batch_applied()
        return len(messages)

    def _failed(self, message_id: str, body: bytes, attempt: int, error: Exception) -> None:
        self._event("failed", message_id)
        self.failed += 1
        if isinstance(error, AzureError):
            # Storage unreachable or refusing (an outage, a restart): expected, retried,
            # and a traceback per batch would bury the one line that matters.
            logger.warning(
                "batch %s failed (attempt %d): storage: %s", message_id, attempt, _first_line(error)
            )
        else:
            logger.exception("batch %s failed (attempt %d)", message_id, attempt)
        if attempt >= self.rules.max_dequeue_count:
            self.poison.send_message(body.decode("utf-8", "replace"))
            self.holder.delete(message_id)
        else:
            self.holder.retry_after(message_id, self.rules.visibility_timeout_s)

    def release(self) -> int:
        """Give back every message received and not finished, so they are visible again at
        once (not a visibility later): what a stopped worker owes the next one."""
        return self.holder.release()

    def _event(self, event: str, message_id: str) -> None:
        if self.on_event is not None:
            self.on_event(event, message_id)

    def drain(self) -> None:
        """Apply until the queue has nothing visible left."""
        while self.run_once():
            pass

    def serve(self, stop: threading.Event, *, idle_wait_s: float = 1.0) -> None:
        """Apply until `stop` is set; then give back what was received and not applied."""
        self.stopping = stop
        try:
            self._serve(stop, idle_wait_s)
        finally:
            self.release()

    def _serve(self, stop: threading.Event, idle_wait_s: float) -> None:
        while not stop.is_set():
            try:
                if not self.run_once():
                    stop.wait(idle_wait_s)
            except AzureError as error:
                logger.warning("queue worker: storage: %s; retrying", _first_line(error))
                stop.wait(5.0)
            except Exception:
                logger.exception("queue worker failed; retrying")
                stop.wait(5.0)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def serve_until_stopped(*, visibility_timeout_s: int | None = None) -> int:
    """`acctsync worker`: serve the batch queue until SIGTERM or Ctrl-C (dev and fault tests)."""
    from shared.services import get_services

    rules = QueueRules.from_host_json()
    if visibility_timeout_s is not None:
        rules = replace(rules, visibility_timeout_s=visibility_timeout_s)
    worker = QueueWorker(get_services(), rules)
    worker.on_event = lambda event, message_id: print(f"{event} {message_id}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"worker ready (pid {os.getpid()})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        worker.serve(stop, idle_wait_s=0.2)
    return 0
