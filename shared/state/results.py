"""What each batch of a cycle did, and the finished cycles (Marketo's "Sync Status")."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from shared.times import inverted_ms


class CycleStatus(StrEnum):
    SUCCEEDED = "succeeded"
    INCOMPLETE = "incomplete"  # a batch ended in the poison queue
    FAILED = "failed"  # planning failed; what it had enqueued was applied
    IN_PROCESS = "in_process"


@dataclass
class BatchResult:
    accounts_applied: int = 0
    contacts_applied: int = 0
    skipped: int = 0
    activities_logged: int = 0
    activities_suppressed: int = 0
    errors: int = 0
    deleted: int = 0  # rows a re-load's sweep found gone from Dynamics
    filtered: int = 0  # accounts the sync filter kept out, or stopped syncing
    refreshed: int = 0  # accounts a re-sync wrote a column of

    def add(self, other: BatchResult) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class CycleTotals:
    """Every batch result of one cycle added up."""

    result: BatchResult
    batches_applied: int
    poisoned: set[str]  # ids of the batches that went to the poison queue
    last_applied_at: datetime | None


class CycleResults:
    """One row per applied batch (the first apply of a batch counts; a redelivery changes
    nothing) and one per batch that went to the poison queue."""

    POISONED = "poisoned|"

    def __init__(self, table: TableClient):
        self.table = table

    def record(self, cycle_id: str, batch_id: str, result: BatchResult, *, at: datetime) -> None:
        entity = {
            "PartitionKey": _partition(cycle_id),
            "RowKey": batch_id,
            "applied_at": at,
            **asdict(result),
        }
        with contextlib.suppress(ResourceExistsError):
            self.table.create_entity(entity)

    def poisoned(self, cycle_id: str, batch_id: str, *, message: str, at: datetime) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": _partition(cycle_id),
                "RowKey": self.POISONED + batch_id,
                "message": message[:2000],
                "at": at,
            }
        )

    def totals(self, cycle_id: str) -> CycleTotals:
        total, applied, poisoned = BatchResult(), 0, set()
        last: datetime | None = None
        names = [f.name for f in fields(BatchResult)]
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": _partition(cycle_id)}
        )
        for row in rows:
            if str(row["RowKey"]).startswith(self.POISONED):
                poisoned.add(str(row["RowKey"]).removeprefix(self.POISONED))
                continue
            applied += 1
            total.add(BatchResult(**{k: int(row.get(k, 0)) for k in names}))
            at = row.get("applied_at")
            if at is not None and (last is None or at > last):
                last = at
        return CycleTotals(total, applied, poisoned, last)


class CycleHistory:
    """Finished cycles, newest first."""

    PARTITION = "history"

    def __init__(self, table: TableClient):
        self.table = table

    def add(self, summary: dict[str, Any], *, started_at: datetime) -> None:
        """Keyed by the cycle's start: adding the same cycle again replaces its row."""
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": inverted_ms(started_at) + "|" + str(summary.get("cycle_id", "")),
                "summary": json.dumps(summary),
            }
        )

    def latest(self, count: int = 10) -> list[dict[str, Any]]:
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": self.PARTITION}, results_per_page=count
        )
        result: list[dict[str, Any]] = []
        for row in rows:
            if len(result) >= count:
                break
            result.append(json.loads(row["summary"]))
        return result


def _partition(cycle_id: str) -> str:
    return f"results|{cycle_id}"
