"""The local queue worker: what the Functions host does for the queue trigger, on Azurite.

It calls the same function Azure calls, and reproduces the host's retry rules from host.json:
a failed message becomes visible again after `visibilityTimeout`, and after `maxDequeueCount`
failed attempts it moves to the poison queue.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import azure.functions as func

from functions.apply_batch import apply_batch_message
from shared.services import Services
from shared.storage import BATCH_QUEUE, POISON_QUEUE

logger = logging.getLogger(__name__)
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"


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
    # A message stays invisible this long while it is applied; longer than any batch takes.
    LEASE_S = 300

    def __init__(self, services: Services, rules: QueueRules | None = None):
        self.services = services
        self.rules = rules or QueueRules.from_host_json()
        self.queue = services.storage.queue(BATCH_QUEUE)
        self.poison = services.storage.queue(POISON_QUEUE)
        self.applied = 0
        self.failed = 0
        self.progress: BatchProgress | None = None

    def run_once(self) -> int:
        """Receive and handle up to one host batch of messages; returns how many it saw."""
        messages = list(
            self.queue.receive_messages(
                messages_per_page=self.rules.batch_size,
                max_messages=self.rules.batch_size,
                visibility_timeout=self.LEASE_S,
            )
        )
        for message in messages:
            body: bytes = message.content
            try:
                apply_batch_message(func.QueueMessage(id=message.id, body=body))
            except Exception:
                self.failed += 1
                logger.exception("batch %s failed (attempt %d)", message.id, message.dequeue_count)
                if (message.dequeue_count or 0) >= self.rules.max_dequeue_count:
                    self.poison.send_message(body.decode("utf-8", "replace"))
                    self.queue.delete_message(message)
                else:
                    # By id and receipt: passing the message would re-send its decoded bytes.
                    self.queue.update_message(
                        message.id,
                        pop_receipt=message.pop_receipt,
                        visibility_timeout=self.rules.visibility_timeout_s,
                    )
                continue
            self.queue.delete_message(message)
            self.applied += 1
            if self.progress is not None:
                self.progress.batch_applied()
        return len(messages)

    def drain(self) -> None:
        """Apply until the queue has nothing visible left."""
        while self.run_once():
            pass

    def serve(self, stop: threading.Event, *, idle_wait_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                if not self.run_once():
                    stop.wait(idle_wait_s)
            except Exception:
                logger.exception("queue worker: storage unavailable, retrying")
                stop.wait(5.0)
