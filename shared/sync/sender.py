"""The sender of a step's batches: packs encoded changes into queue messages and sends them,
numbered in order across the whole cycle."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from azure.storage.queue import QueueClient

from shared.mirror.writes import run_parallel
from shared.state.schedule import batch_id
from shared.sync.batches import (
    MAX_MESSAGE_BYTES,
    Batch,
    BatchPacker,
    ClaimCheck,
    Packed,
    SweepBatch,
    byte_size,
    encode_batch,
    header_budget,
)
from shared.sync.claims import ClaimStore
from shared.sync.readers import Fragment

# Messages of a page sent at once: the queue takes them in any order (each is independent).
PARALLEL_SENDS = 4


class SendProgress(Protocol):
    def enqueued(self, batches: int, records: int) -> None: ...


class BatchSender:
    def __init__(
        self,
        queue: QueueClient,
        claims: ClaimStore,
        header: Batch,
        *,
        sent_before: int,
        progress: SendProgress,
    ):
        """`sent_before`: batches the cycle sent already; this sender's numbers follow on."""
        self.queue = queue
        self.claims = claims
        self.header = header
        self.sent = sent_before
        self.progress = progress
        self.packer = BatchPacker(header_budget(header))
        self._page: list[str] = []  # this page's messages, sent together at its end

    def add(self, fragment: Fragment) -> None:
        if not self.packer.fits(fragment.text):
            # Alone, through a blob: a record too large for any queue message still syncs.
            alone = Packed()
            alone.add(fragment.kind, fragment.text, byte_size(fragment.text))
            self._send(alone)
            return
        full = self.packer.add(fragment.kind, fragment.partition, fragment.text)
        if full is not None:
            self._send(full)

    def end_page(self) -> None:
        """Send the page's batches, a few side by side, and everything still packed, so a
        checkpoint after the page loses nothing."""
        for packed in self.packer.flush():
            self._send(packed)
        run_parallel(self.queue.send_message, self._page, width=PARALLEL_SENDS)
        self._page = []

    def send_sweep(self, entity_set: str, partition: str, generation: int) -> None:
        number = self._next_number()
        sweep = SweepBatch(
            self.header.cycle_id, number, entity_set, partition, generation, self.header.traceparent
        )
        self._page.append(sweep.encode())
        self.sent += 1
        self.progress.enqueued(1, 0)

    def _send(self, packed: Packed) -> None:
        number = self._next_number()
        header = replace(self.header, batch_id=number)
        body = encode_batch(
            header,
            accounts=packed.accounts,
            contacts=packed.contacts,
            members=packed.members,
            search=packed.search,
        )
        if byte_size(body) > MAX_MESSAGE_BYTES:
            blob = self.claims.put(header.cycle_id, number, body)
            body = ClaimCheck(header.cycle_id, number, blob).encode()
        self._page.append(body)
        self.sent += 1
        self.progress.enqueued(1, packed.records)

    def _next_number(self) -> str:
        return batch_id(self.sent + 1)
