"""What each batch of a cycle did, added up per cycle (shared/state/history.py keeps the
finished cycles)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum

from azure.core.exceptions import ResourceExistsError

from shared.storage import TableRepository


class CycleStatus(StrEnum):
    SUCCEEDED = "succeeded"
    INCOMPLETE = "incomplete"  # a batch did not apply (it ended in the poison queue)
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
    # Of the applied rows: those the mirror did not have, and those deleted in Dynamics.
    added: int = 0
    removed: int = 0
    filtered: int = 0  # accounts the sync filter kept out, or stopped syncing
    refreshed: int = 0  # accounts a re-sync wrote a column of

    def add(self, other: BatchResult) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class ChangeLag:
    """How long after their change in Dynamics (modifiedon) rows reached the mirror."""

    count: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)

    def add(self, other: ChangeLag) -> None:
        self.count += other.count
        self.total_s += other.total_s
        self.max_s = max(self.max_s, other.max_s)


@dataclass
class StageTotals:
    """The applied batches of one stage of a cycle (contacts, accounts, their sweeps)."""

    result: BatchResult = field(default_factory=BatchResult)
    batches: int = 0
    last_applied_at: datetime | None = None


@dataclass
class CycleTotals:
    """Every batch result of one cycle added up."""

    result: BatchResult
    applied: set[str]  # ids of the batches that have a result row
    poisoned: set[str]  # ids of the batches whose last attempt recorded their poisoning
    last_applied_at: datetime | None
    stages: dict[str, StageTotals] = field(default_factory=dict)
    lag: ChangeLag = field(default_factory=ChangeLag)

    @property
    def batches_applied(self) -> int:
        return len(self.applied)

    def unapplied(self, batch_ids: Iterable[str]) -> list[str]:
        """Those of `batch_ids` that were not applied (poisoned, recorded or not, or lost)."""
        return [batch_id for batch_id in batch_ids if batch_id not in self.applied]


class CycleResults(TableRepository):
    """One row per applied batch (the first apply of a batch counts; a redelivery changes
    nothing) and one per batch that went to the poison queue."""

    POISONED = "poisoned|"

    def record(
        self,
        cycle_id: str,
        batch_id: str,
        result: BatchResult,
        *,
        at: datetime,
        stage: str = "",
        lag: ChangeLag | None = None,
    ) -> None:
        entity = {
            "PartitionKey": _partition(cycle_id),
            "RowKey": batch_id,
            "applied_at": at,
            "stage": stage,
            **asdict(result),
            **{f"lag_{k}": v for k, v in asdict(lag or ChangeLag()).items()},
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

    def unapplied(self, cycle_id: str, batch_ids: list[str]) -> list[str]:
        """Those of the cycle's `batch_ids` that have no result row (not applied)."""
        if not batch_ids:
            return []
        rows = self.table.query_entities(
            "PartitionKey eq @p and RowKey ge @low and RowKey le @high",
            parameters={"p": _partition(cycle_id), "low": batch_ids[0], "high": batch_ids[-1]},
            select=["RowKey"],
        )
        applied = {str(row["RowKey"]) for row in rows}
        return [batch_id for batch_id in batch_ids if batch_id not in applied]

    def totals(self, cycle_id: str) -> CycleTotals:
        total, applied, poisoned = BatchResult(), set[str](), set[str]()
        last: datetime | None = None
        stages: dict[str, StageTotals] = {}
        lag = ChangeLag()
        names = [f.name for f in fields(BatchResult)]
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": _partition(cycle_id)}
        )
        for row in rows:
            if str(row["RowKey"]).startswith(self.POISONED):
                poisoned.add(str(row["RowKey"]).removeprefix(self.POISONED))
                continue
            applied.add(str(row["RowKey"]))
            result = BatchResult(**{k: int(row.get(k, 0)) for k in names})
            total.add(result)
            at = row.get("applied_at")
            if at is not None and (last is None or at > last):
                last = at
            stage = stages.setdefault(str(row.get("stage") or ""), StageTotals())
            stage.result.add(result)
            stage.batches += 1
            if at is not None and (stage.last_applied_at is None or at > stage.last_applied_at):
                stage.last_applied_at = at
            lag.add(
                ChangeLag(
                    int(row.get("lag_count", 0)),
                    float(row.get("lag_total_s", 0.0)),
                    float(row.get("lag_max_s", 0.0)),
                )
            )
        return CycleTotals(total, applied, poisoned, last, stages, lag)


def _partition(cycle_id: str) -> str:
    return f"results|{cycle_id}"
