"""Sync state in Table Storage: cursors, the cycle lease and schedule, results, errors, fields.

All rows live in one small table; each kind has its own partition so every read is a point
read or a single-partition query.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.mapping import ColumnType

_TIME_BOUND_MS = 10**13 - 1
_UNSAFE_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _inverted(at: datetime) -> str:
    return f"{_TIME_BOUND_MS - int(at.timestamp() * 1000):013d}"


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None


@dataclass(frozen=True)
class Cursor:
    entity_set: str
    delta_link: str
    select: str
    updated_at: datetime


class Cursors:
    """The delta link of each table's change-tracking chain."""

    PARTITION = "cursor"

    def __init__(self, table: TableClient):
        self.table = table

    def get(self, entity_set: str) -> Cursor | None:
        try:
            row = self.table.get_entity(self.PARTITION, entity_set)
        except ResourceNotFoundError:
            return None
        return Cursor(entity_set, row["delta_link"], row.get("select", ""), row["updated_at"])

    def commit(self, cursors: dict[str, tuple[str, str]], *, at: datetime) -> None:
        """Store the new delta links (entity set → (link, select)) in one transaction."""
        operations = [
            (
                "upsert",
                {
                    "PartitionKey": self.PARTITION,
                    "RowKey": entity_set,
                    "delta_link": link,
                    "select": select,
                    "updated_at": at,
                },
                {"mode": UpdateMode.REPLACE},
            )
            for entity_set, (link, select) in cursors.items()
        ]
        if operations:
            self.table.submit_transaction(operations)

    def drop(self, entity_set: str) -> None:
        self.table.delete_entity(self.PARTITION, entity_set)

    def all(self) -> list[Cursor]:
        rows = self.table.query_entities("PartitionKey eq @p", parameters={"p": self.PARTITION})
        return [
            Cursor(r["RowKey"], r["delta_link"], r.get("select", ""), r["updated_at"]) for r in rows
        ]


class LeaseLost(RuntimeError):
    """Another heartbeat took the cycle over (this one's lease ran out)."""


@dataclass
class Schedule:
    phase: str = "idle"  # idle → planning → applying (→ planning → applying) → idle
    # The entity set planned last: a cycle plans contacts, applies them, then plans accounts
    # (shared/cycle.py says why); "" before the first.
    stage: str = ""
    cycle_id: str = ""
    lease_owner: str = ""
    lease_until: datetime | None = None
    started_at: datetime | None = None
    planned_at: datetime | None = None
    finished_at: datetime | None = None
    next_due: datetime | None = None
    plan: str = "{}"  # JSON summary of the planning step
    etag: str | None = field(default=None, compare=False)


class CycleSchedule:
    """The one cycle lease: taken and moved on only with an ETag condition."""

    PARTITION, ROW = "schedule", "cycle"

    def __init__(self, table: TableClient):
        self.table = table

    def read(self) -> Schedule:
        try:
            row = self.table.get_entity(self.PARTITION, self.ROW)
        except ResourceNotFoundError:
            return Schedule()
        return Schedule(
            phase=row["phase"],
            stage=row.get("stage", ""),
            cycle_id=row.get("cycle_id", ""),
            lease_owner=row.get("lease_owner", ""),
            lease_until=row.get("lease_until"),
            started_at=row.get("started_at"),
            planned_at=row.get("planned_at"),
            finished_at=row.get("finished_at"),
            next_due=row.get("next_due"),
            plan=row.get("plan", "{}"),
            etag=row.metadata["etag"],
        )

    def write(self, schedule: Schedule) -> Schedule | None:
        """Store a new schedule if the stored one is still the one read; None if it moved."""
        entity = {k: v for k, v in asdict(schedule).items() if k != "etag" and v is not None}
        entity.update(PartitionKey=self.PARTITION, RowKey=self.ROW)
        try:
            if schedule.etag is None:
                meta = self.table.create_entity(entity)
            else:
                meta = self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=schedule.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceExistsError):
            return None
        schedule.etag = meta["etag"]
        return schedule

    def try_start(
        self, *, owner: str, now: datetime, lease: timedelta, force: bool = False
    ) -> Schedule | None:
        """Take the lease for a new cycle when one is due; None when not due or taken."""
        current = self.read()
        if current.phase == "applying":
            return None
        if current.phase == "planning" and current.lease_until and current.lease_until > now:
            return None
        due = current.next_due is None or current.next_due <= now
        if current.phase == "idle" and not due and not force:
            return None
        current.phase = "planning"
        current.stage = ""
        current.cycle_id = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        current.lease_owner = owner
        current.lease_until = now + lease
        current.started_at = now
        current.planned_at = None
        current.finished_at = None
        current.plan = "{}"
        return self.write(current)

    def resume(
        self, schedule: Schedule, *, owner: str, now: datetime, lease: timedelta
    ) -> Schedule | None:
        """Take the lease to plan the applied cycle's next stage; None when another took it."""
        schedule.phase = "planning"
        schedule.lease_owner = owner
        schedule.lease_until = now + lease
        return self.write(schedule)

    def renew(self, schedule: Schedule, *, now: datetime, lease: timedelta) -> None:
        schedule.lease_until = now + lease
        if self.write(schedule) is None:
            raise LeaseLost(f"cycle {schedule.cycle_id} lost its lease to another heartbeat")

    def planned(
        self, schedule: Schedule, *, now: datetime, stage: str, plan: dict[str, Any]
    ) -> None:
        schedule.phase = "applying"
        schedule.stage = stage
        schedule.planned_at = now
        schedule.plan = json.dumps(plan)
        if self.write(schedule) is None:
            raise LeaseLost(f"cycle {schedule.cycle_id} lost its lease before it was planned")

    def abandon(self, schedule: Schedule, *, now: datetime, retry_in: timedelta) -> None:
        """A failed planning step: back to idle, due again after `retry_in`."""
        schedule.phase = "idle"
        schedule.lease_owner = ""
        schedule.lease_until = None
        schedule.next_due = now + retry_in
        self.write(schedule)

    def finished(self, schedule: Schedule, *, now: datetime, interval: timedelta) -> bool:
        schedule.phase = "idle"
        schedule.finished_at = now
        schedule.next_due = now + interval
        schedule.lease_owner = ""
        schedule.lease_until = None
        return self.write(schedule) is not None


@dataclass
class BatchResult:
    accounts_applied: int = 0
    contacts_applied: int = 0
    skipped: int = 0
    activities_logged: int = 0
    activities_suppressed: int = 0
    errors: int = 0

    def add(self, other: BatchResult) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


class CycleResults:
    """What each batch of a cycle did; the first successful apply of a batch is kept."""

    def __init__(self, table: TableClient):
        self.table = table

    def record(self, cycle_id: str, batch_id: str, result: BatchResult) -> None:
        entity = {"PartitionKey": f"results|{cycle_id}", "RowKey": batch_id, **asdict(result)}
        # A redelivered batch changes nothing, so its first result stands.
        with contextlib.suppress(ResourceExistsError):
            self.table.create_entity(entity)

    def total(self, cycle_id: str) -> tuple[BatchResult, int]:
        total, batches = BatchResult(), 0
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": f"results|{cycle_id}"}
        )
        for row in rows:
            batches += 1
            total.add(BatchResult(**{k: int(row.get(k, 0)) for k in asdict(BatchResult())}))
        return total, batches


class CycleHistory:
    """Finished cycles, newest first."""

    PARTITION = "history"

    def __init__(self, table: TableClient):
        self.table = table

    def add(self, summary: dict[str, Any], *, finished_at: datetime) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": _inverted(finished_at) + "|" + str(summary.get("cycle_id", "")),
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


class SyncErrors:
    """Per-record sync errors (Marketo's "Sync Errors"): record id, operation and message."""

    def __init__(self, table: TableClient):
        self.table = table

    def record(
        self, *, entity: str, record_id: str, operation: str, message: str, cycle_id: str
    ) -> None:
        now = utcnow()
        # The id may be whatever a bad row carried: keep it whole in a property, and only a
        # key-safe form of it in the RowKey (which refuses / \ # ? and control characters).
        safe_id = _UNSAFE_KEY.sub("_", record_id)[:100]
        self.table.upsert_entity(
            {
                "PartitionKey": "errors",
                "RowKey": f"{_inverted(now)}|{entity}|{safe_id}",
                "entity": entity,
                "record_id": record_id,
                "operation": operation,
                "message": message[:2000],
                "cycle_id": cycle_id,
                "at": now,
            }
        )

    def latest(self, count: int = 50) -> list[dict[str, Any]]:
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": "errors"}, results_per_page=count
        )
        result: list[dict[str, Any]] = []
        for row in rows:
            if len(result) >= count:
                break
            result.append(
                {
                    "entity": row["entity"],
                    "id": row["record_id"],
                    "operation": row["operation"],
                    "message": row["message"],
                    "cycle_id": row["cycle_id"],
                    "at": iso(row["at"]),
                }
            )
        return result


@dataclass(frozen=True)
class FieldSelection:
    """The account columns chosen to sync (Marketo's "Select Fields to Sync")."""

    columns: dict[str, ColumnType]
    # MetadataId of each selected column under field security, to re-check the grant cheaply.
    secured: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    # Columns whose values the next cycle loads for every account, without activities.
    backfill: list[str] = field(default_factory=list)
    checked_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "columns": {k: v.value for k, v in self.columns.items()},
                "secured": self.secured,
                "unreadable": self.unreadable,
                "backfill": self.backfill,
                "checked_at": iso(self.checked_at),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FieldSelection:
        data = json.loads(text)
        checked = data.get("checked_at")
        return cls(
            columns={k: ColumnType(v) for k, v in data["columns"].items()},
            secured=dict(data.get("secured", {})),
            unreadable=list(data.get("unreadable", [])),
            backfill=list(data.get("backfill", [])),
            checked_at=datetime.fromisoformat(checked.replace("Z", "+00:00")) if checked else None,
        )


class FieldSelections:
    PARTITION, ROW = "fields", "account"

    def __init__(self, table: TableClient):
        self.table = table

    def get(self) -> FieldSelection | None:
        try:
            row = self.table.get_entity(self.PARTITION, self.ROW)
        except ResourceNotFoundError:
            return None
        return FieldSelection.from_json(row["selection"])

    def put(self, selection: FieldSelection) -> None:
        self.table.upsert_entity(
            {"PartitionKey": self.PARTITION, "RowKey": self.ROW, "selection": selection.to_json()},
            mode=UpdateMode.REPLACE,
        )
