"""Signs of life, so status can tell a working sync from a dead host: the time of the last
heartbeat (one row, rewritten once per heartbeat) and, per queue worker, the batches it holds
invisible and until when (one row per worker, written when it takes or finishes messages and
each time it renews their visibility)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.storage import TableRepository, entity_or_none


def this_process() -> str:
    """Names the process a beat or a hold comes from: a dead host's workers are its own."""
    host = os.environ.get("WEBSITE_INSTANCE_ID") or socket.gethostname()
    return f"{host}:{os.getpid()}"


@dataclass(frozen=True)
class Beat:
    """The last heartbeat: when, how often they come, and from which process."""

    at: datetime
    every_s: float
    process: str


@dataclass(frozen=True)
class HeldBatch:
    message_id: str
    cycle_id: str
    batch_id: str


@dataclass(frozen=True)
class Hold:
    """What one worker holds invisible on the batch queue: `until` is when the messages come
    back if it stops renewing; it renews every `every_s` while alive."""

    worker: str
    process: str
    renewed_at: datetime
    every_s: float
    until: datetime
    batches: tuple[HeldBatch, ...]


class Liveness(TableRepository):
    PARTITION = "liveness"
    BEAT_ROW = "heartbeat"
    WORKER_PREFIX = "worker-"

    def beat(self, *, at: datetime, every_s: float) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": self.BEAT_ROW,
                "at": at,
                "every_s": float(every_s),
                "process": this_process(),
            },
            mode=UpdateMode.REPLACE,
        )

    def last_beat(self) -> Beat | None:
        row = entity_or_none(self.table, self.PARTITION, self.BEAT_ROW)
        if row is None:
            return None
        return Beat(row["at"], float(row["every_s"]), str(row.get("process", "")))

    def hold(self, hold: Hold) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": self.WORKER_PREFIX + hold.worker,
                "process": hold.process,
                "renewed_at": hold.renewed_at,
                "every_s": float(hold.every_s),
                "until": hold.until,
                "batches": json.dumps(
                    [[b.message_id, b.cycle_id, b.batch_id] for b in hold.batches]
                ),
            },
            mode=UpdateMode.REPLACE,
        )

    def drop(self, worker: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, self.WORKER_PREFIX + worker)

    def holds(self) -> list[Hold]:
        rows = self.table.query_entities(
            "PartitionKey eq @p and RowKey gt @from and RowKey lt @to",
            parameters={
                "p": self.PARTITION,
                "from": self.WORKER_PREFIX,
                "to": self.WORKER_PREFIX[:-1] + chr(ord(self.WORKER_PREFIX[-1]) + 1),
            },
        )
        return [
            Hold(
                worker=str(row["RowKey"])[len(self.WORKER_PREFIX) :],
                process=str(row.get("process", "")),
                renewed_at=row["renewed_at"],
                every_s=float(row["every_s"]),
                until=row["until"],
                batches=tuple(HeldBatch(*map(str, b)) for b in json.loads(row["batches"])),
            )
            for row in rows
        ]

    def forget_returned(self, now: datetime) -> int:
        """Drop the rows of stopped workers whose messages are visible again (a worker that
        takes them writes its own): what a starting worker tidies."""
        # A live worker renews before `until`: one past it has stopped.
        returned = [h.worker for h in self.holds() if h.until < now]
        for worker in returned:
            self.drop(worker)
        return len(returned)
