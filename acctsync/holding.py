"""The messages a local queue worker holds: invisible for a short visibility it renews while it
applies them, so a worker that dies gives them back within about a minute (not a long lease
later); and written to the state table (shared/state/liveness.py), so status can name the
batches a stopped worker holds and say when they come back.

Every renewal changes a message's pop receipt: the receipts live here, and the worker deletes
or gives back a message only through this holder, under its lock, so a renewal never races
the delete with a stale receipt.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueClient, QueueMessage

from shared.state.liveness import HeldBatch, Hold, Liveness, this_process
from shared.sync.batches import message_key
from shared.times import utcnow

logger = logging.getLogger(__name__)
# Renewals per visibility: a worker that stops is seen as stopped after three missed ones,
# half a visibility, while its messages are still invisible.
RENEWALS_PER_VISIBILITY = 6
_numbers = itertools.count(1)


@dataclass
class _Held:
    receipt: str
    batch: HeldBatch
    until: datetime  # visible again then, unless renewed


class MessageHolder:
    def __init__(self, queue: QueueClient, liveness: Liveness, *, visibility_s: int):
        self.queue = queue
        self.liveness = liveness
        self.visibility_s = visibility_s
        self.every_s = max(visibility_s / RENEWALS_PER_VISIBILITY, 0.5)
        self.worker = f"{this_process()}-{next(_numbers)}"
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._keeper: threading.Thread | None = None

    def take(self, messages: list[QueueMessage]) -> None:
        """Hold `messages` (received with `visibility_s`) and renew them until finished."""
        if not messages:
            return
        until = utcnow() + timedelta(seconds=self.visibility_s)
        with self._lock:
            for message in messages:
                cycle_id, batch_id = message_key(message.content)
                batch = HeldBatch(message.id, cycle_id, batch_id or message.id)
                self._held[message.id] = _Held(message.pop_receipt or "", batch, until)
            self._publish()
        if self._keeper is None:
            self.liveness.forget_returned(utcnow())  # rows of workers that died before
            self._keeper = threading.Thread(target=self._keep, name="renew", daemon=True)
            self._keeper.start()

    def delete(self, message_id: str) -> None:
        """Applied: off the queue for good."""
        with self._lock:
            held = self._held.pop(message_id, None)
            if held is None:  # given back meanwhile (a stopping host): applied again later
                return
            self.queue.delete_message(message_id, held.receipt)
            self._publish()

    def retry_after(self, message_id: str, seconds: int) -> None:
        """Failed: visible again `seconds` from now, for the next attempt."""
        with self._lock:
            held = self._held.pop(message_id, None)
            if held is None:  # given back meanwhile: visible already
                return
            self.queue.update_message(
                message_id, pop_receipt=held.receipt, visibility_timeout=seconds
            )
            self._publish()

    def release(self) -> int:
        """Give back every message held, visible at once; stop renewing."""
        self._closed.set()
        with self._lock:
            held, self._held = self._held, {}
            for message_id, entry in held.items():
                try:
                    self.queue.update_message(
                        message_id, pop_receipt=entry.receipt, visibility_timeout=0
                    )
                except AzureError as error:
                    logger.warning(
                        "could not give back batch %s: %s", message_id, _first_line(error)
                    )
            self._publish()
        return len(held)

    def _keep(self) -> None:
        while not self._closed.wait(self.every_s):
            with self._lock:
                self._renew()

    def _renew(self) -> None:
        if not self._held:
            return  # idle: the row was dropped with the last message
        for message_id, entry in self._held.items():
            renewed = utcnow()
            try:
                updated = self.queue.update_message(
                    message_id, pop_receipt=entry.receipt, visibility_timeout=self.visibility_s
                )
            except AzureError as error:  # the next renewal tries again
                logger.warning("could not renew batch %s: %s", message_id, _first_line(error))
                continue
            entry.receipt = updated.pop_receipt or entry.receipt
            entry.until = renewed + timedelta(seconds=self.visibility_s)
        self._publish()

    def _publish(self) -> None:
        """What this worker holds, for status; never fails a batch (only status is late)."""
        try:
            if not self._held:
                self.liveness.drop(self.worker)
                return
            self.liveness.hold(
                Hold(
                    worker=self.worker,
                    process=this_process(),
                    renewed_at=utcnow(),
                    every_s=self.every_s,
                    until=max(e.until for e in self._held.values()),
                    batches=tuple(e.batch for e in self._held.values()),
                )
            )
        except AzureError as error:
            logger.warning("could not record the batches held: %s", _first_line(error))


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
