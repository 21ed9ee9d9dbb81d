"""The cycle's state: one row, moved on only with an ETag condition.

A cycle runs its steps in order, contacts first (shared/sync/cycle.py says why):

    contacts → [contacts sweep] → accounts → [accounts sweep] → [resync] → finished

A sweep follows a table's full re-load only; the resync step runs while a re-sync of a column
is queued (shared/sync/resync_requests.py). Each step is PLANNING (read from Dataverse and
enqueued, under a lease, possibly over several heartbeats: the position in the table's page
chain is checkpointed after every page) and then APPLYING (its batches on the queue). Whatever
a cycle writes here is written under the ETag it read, so two heartbeats never both move it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
)
from azure.data.tables import UpdateMode

from shared.storage import TableRepository, entity_or_none
from shared.times import iso, parse_iso


class Phase(StrEnum):
    IDLE = "idle"
    PLANNING = "planning"
    APPLYING = "applying"
    # `acctsync verify` (shared/verify/step.py): between cycles, never during one.
    VERIFYING = "verifying"


class Step(StrEnum):
    CONTACTS = "contacts"
    CONTACTS_SWEEP = "contacts_sweep"
    ACCOUNTS = "accounts"
    ACCOUNTS_SWEEP = "accounts_sweep"
    RESYNC = "resync"

    @property
    def entity_set(self) -> str:
        return "contacts" if self in (Step.CONTACTS, Step.CONTACTS_SWEEP) else "accounts"

    @property
    def is_sweep(self) -> bool:
        return self in (Step.CONTACTS_SWEEP, Step.ACCOUNTS_SWEEP)


class LoadMode(StrEnum):
    """How a table's changes are read: its first load, the changes since the delta link, or
    a full re-read of a table already mirrored (expired token, new columns, refused link)."""

    INITIAL = "initial"
    DELTA = "delta"
    RELOAD = "reload"


def batch_id(number: int) -> str:
    """The id of a cycle's `number`th batch (1-based): batches are numbered across the cycle."""
    return f"{number:06d}"


@dataclass
class TablePlan:
    """What this cycle read of one table."""

    mode: LoadMode
    changed: int = 0
    pages: int = 0
    generation: int = 0
    restarted: str | None = None  # why the table's chain started over, in plain words
    # The numbers of the first and last batch this cycle sent for the table (0: none yet).
    first_batch: int = 0
    last_batch: int = 0
    # Why the re-load's sweep must not run, or did not (a batch of the re-load did not apply).
    sweep_skipped: str | None = None

    def batch_ids(self) -> list[str]:
        """The ids of the batches this cycle sent for the table."""
        if not self.first_batch:
            return []
        return [batch_id(n) for n in range(self.first_batch, self.last_batch + 1)]


@dataclass
class CyclePlan:
    """What the cycle's planning did so far; the batch numbers continue from `batches`."""

    tables: dict[str, TablePlan] = field(default_factory=dict)
    batches: int = 0
    errors: int = 0
    backfill: list[str] = field(default_factory=list)
    unreadable_fields: list[str] = field(default_factory=list)
    dataverse_requests: int = 0
    dataverse_throttled: int = 0
    heartbeats: int = 0
    resync: str = ""  # the re-sync whose next chunk this cycle reads, after the accounts

    def changed(self, entity_set: str) -> int:
        table = self.tables.get(entity_set)
        return table.changed if table else 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CyclePlan:
        data = json.loads(text or "{}")
        tables = {
            name: TablePlan(**{**value, "mode": LoadMode(value["mode"])})
            for name, value in data.pop("tables", {}).items()
        }
        # A plan stored by an older version may carry keys this one does not know.
        known = {f.name for f in fields(cls)}
        return cls(tables=tables, **{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Checkpoint:
    """Where a table's page chain stands: the next page to read, and how it is read."""

    mode: LoadMode
    select: str
    next_link: str
    generation: int = 0
    backfill: tuple[str, ...] = ()  # the columns the chain loads for every row
    rows_read: int = 0  # in the whole chain, across heartbeats and cycles
    pages: int = 0
    total: int | None = None  # rows the table had when a full read began (for progress)
    # A re-load chain some of whose batches, sent by an earlier cycle, did not apply: why its
    # sweep must not run (it would flag the rows of those batches deleted).
    unapplied: str = ""
    # When the chain's first page was asked for (ISO, microseconds): changes made since may
    # or may not be in it, so a verify counts them as pending (shared/verify/compared_rows.py).
    read_from: str | None = None


@dataclass(frozen=True)
class Failure:
    """A planning step that failed: when, where, what happened and what to do about it."""

    at: datetime
    step: Step | None  # None: a row an older version wrote without one
    message: str
    fix: str = ""
    needs_action: bool = False  # retrying changes nothing until someone acts

    def to_dict(self) -> dict[str, Any]:
        step = self.step.value if self.step else ""
        return {**asdict(self), "at": iso(self.at), "step": step}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(
            at=parse_iso(data["at"]),
            step=Step(data["step"]) if data.get("step") else None,
            message=data["message"],
            fix=data.get("fix", ""),
            needs_action=bool(data.get("needs_action", False)),
        )


@dataclass
class CycleState:
    phase: Phase = Phase.IDLE
    step: Step | None = None
    cycle_id: str = ""
    lease_owner: str = ""
    lease_until: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_due: datetime | None = None
    # The interval next_due was counted with: a host started with another one recounts it.
    interval_minutes: float | None = None
    plan: CyclePlan = field(default_factory=CyclePlan)
    # Per entity set; they outlive a failed cycle, so the next one goes on from there.
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    # This cycle's planning failed: it is closed as failed once its batches are applied.
    failure: Failure | None = None
    last_failure: Failure | None = None
    failures_in_a_row: int = 0
    # The last cycle that was not a failure finished then; a planner last moved on then.
    succeeded_at: datetime | None = None
    progress_at: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    def lease_held(self, now: datetime) -> bool:
        """A planner is at work (or died less than a lease ago)."""
        return (
            self.phase in (Phase.PLANNING, Phase.VERIFYING)
            and bool(self.lease_owner)
            and self.lease_until is not None
            and self.lease_until > now
        )


class CycleSchedule(TableRepository):
    PARTITION, ROW = "schedule", "cycle"

    def read(self) -> CycleState:
        row = entity_or_none(self.table, self.PARTITION, self.ROW)
        if row is None:
            return CycleState()
        step = row.get("step") or None
        return CycleState(
            phase=Phase(row["phase"]),
            step=Step(step) if step else None,
            cycle_id=row.get("cycle_id", ""),
            lease_owner=row.get("lease_owner", ""),
            lease_until=row.get("lease_until"),
            started_at=row.get("started_at"),
            finished_at=row.get("finished_at"),
            next_due=row.get("next_due"),
            interval_minutes=row.get("interval_minutes"),
            plan=CyclePlan.from_json(row.get("plan", "{}")),
            checkpoints={
                name: _checkpoint(value)
                for name, value in json.loads(row.get("checkpoints") or "{}").items()
            },
            failure=_failure(row.get("failure")),
            last_failure=_failure(row.get("last_failure")),
            failures_in_a_row=int(row.get("failures_in_a_row", 0)),
            succeeded_at=row.get("succeeded_at"),
            progress_at=row.get("progress_at"),
            etag=row.metadata["etag"],
        )

    def write(self, state: CycleState) -> bool:
        """Store `state` if the stored row is still the one it was read as; False if it moved."""
        entity: dict[str, Any] = {
            "PartitionKey": self.PARTITION,
            "RowKey": self.ROW,
            "phase": state.phase.value,
            "step": state.step.value if state.step else "",
            "cycle_id": state.cycle_id,
            "lease_owner": state.lease_owner,
            "plan": state.plan.to_json(),
            "checkpoints": json.dumps({k: asdict(v) for k, v in state.checkpoints.items()}),
            "failure": json.dumps(state.failure.to_dict()) if state.failure else "",
            "last_failure": json.dumps(state.last_failure.to_dict()) if state.last_failure else "",
            "failures_in_a_row": state.failures_in_a_row,
        }
        for name in (
            "lease_until",
            "started_at",
            "finished_at",
            "next_due",
            "interval_minutes",
            "succeeded_at",
            "progress_at",
        ):
            value = getattr(state, name)
            if value is not None:
                entity[name] = value
        try:
            if state.etag is None:
                meta = self.table.create_entity(entity)
            else:
                meta = self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=state.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceModifiedError, ResourceExistsError):
            return False
        state.etag = meta["etag"]
        return True

    def start(
        self, state: CycleState, *, owner: str, now: datetime, lease: timedelta
    ) -> CycleState | None:
        """Take the lease for a new cycle; None when another heartbeat moved the row first."""
        started = replace(
            state,
            phase=Phase.PLANNING,
            step=Step.CONTACTS,
            cycle_id=f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
            lease_owner=owner,
            lease_until=now + lease,
            started_at=now,
            plan=CyclePlan(),
            failure=None,
        )
        return started if self.write(started) else None

    def take(
        self,
        state: CycleState,
        *,
        owner: str,
        now: datetime,
        lease: timedelta,
        step: Step | None = None,
        phase: Phase = Phase.PLANNING,
    ) -> CycleState | None:
        """Take the lease to plan `step` (default: go on with the current one), or to verify."""
        taken = replace(
            state,
            phase=phase,
            step=step or state.step,
            lease_owner=owner,
            lease_until=now + lease,
        )
        return taken if self.write(taken) else None


def _checkpoint(data: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        **{**data, "mode": LoadMode(data["mode"]), "backfill": tuple(data.get("backfill", ()))}
    )


def _failure(text: str | None) -> Failure | None:
    return Failure.from_dict(json.loads(text)) if text else None
