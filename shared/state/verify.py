"""What `acctsync verify` keeps: the verify asked for, and the last one's result.

A verify is asked for (the CLI, the API, or the schedule) and runs inside the heartbeat as a
phase of its own (shared/verify/step.py), so it never overlaps a cycle. The position of the
verify under way is a blob (shared/verify/progress.py); the request and the last result are
rows of the state table.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.storage import TableRepository, entity_or_none
from shared.times import iso, iso_precise, parse_iso

MAX_SAMPLES = 100


class DriftKind(StrEnum):
    """How the mirror differs from Dynamics for one record (the contract's names)."""

    MISSING = "missing"  # in Dynamics (and in scope), not in the mirror
    WRONGLY_DELETED = "wrongly_deleted"  # flagged deleted in the mirror, live in Dynamics
    NOT_DELETED = "not_deleted"  # live in the mirror, gone from Dynamics
    STALE = "stale"  # the mirror holds another version than Dynamics
    WRONG_ACCOUNT = "wrong_account"  # a contact under another account than in Dynamics
    VALUES = "values"  # --deep: the same version, other values


BASIC_KINDS = tuple(k for k in DriftKind if k is not DriftKind.VALUES)


class VerifyTrigger(StrEnum):
    REQUESTED = "requested"  # `acctsync verify`, POST /api/sync/verify
    SCHEDULED = "scheduled"  # every VERIFY_INTERVAL_HOURS


@dataclass(frozen=True)
class VerifyRequest:
    id: str
    trigger: VerifyTrigger
    requested_at: datetime
    requested_by: str
    repair: bool = False
    deep: bool = False

    @classmethod
    def new(
        cls, *, trigger: VerifyTrigger, now: datetime, by: str, repair: bool, deep: bool
    ) -> VerifyRequest:
        return cls(f"v{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}", trigger, now, by, repair, deep)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger": self.trigger.value,
            "requested_at": iso(self.requested_at),
            "requested_by": self.requested_by,
            "repair": self.repair,
            "deep": self.deep,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyRequest:
        return cls(
            str(data["id"]),
            VerifyTrigger(data["trigger"]),
            parse_iso(data["requested_at"]),
            str(data.get("requested_by", "")),
            bool(data.get("repair", False)),
            bool(data.get("deep", False)),
        )


@dataclass(frozen=True)
class Drift:
    """One drifted record."""

    table: str  # entity set: accounts, contacts
    id: str
    kind: DriftKind

    def to_json(self) -> dict[str, str]:
        return {"table": self.table, "id": self.id, "kind": self.kind.value}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Drift:
        return cls(data["table"], data["id"], DriftKind(data["kind"]))


@dataclass(frozen=True)
class TableVerify:
    """What a verify found in one table."""

    entity_set: str
    checked: int  # Dynamics rows compared (in scope, not pending)
    pending: int  # changed in Dynamics after the last cycle read the table
    by_kind: dict[DriftKind, int] = field(default_factory=dict)

    @property
    def drift(self) -> int:
        return sum(self.by_kind.values())


@dataclass(frozen=True)
class VerifyResult:
    id: str
    trigger: VerifyTrigger
    started_at: datetime
    finished_at: datetime
    deep: bool
    repair: bool
    tables: tuple[TableVerify, ...]
    samples: tuple[Drift, ...]  # at most MAX_SAMPLES
    repaired: int = 0
    drift_left: int = 0
    dataverse_requests: int = 0
    error: str | None = None

    @property
    def drift(self) -> int:
        return sum(t.drift for t in self.tables)

    @property
    def by_kind(self) -> dict[str, int]:
        kinds = tuple(DriftKind) if self.deep else BASIC_KINDS
        return {k.value: sum(t.by_kind.get(k, 0) for t in self.tables) for k in kinds}

    @property
    def duration_s(self) -> float:
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        """What `acctsync verify` prints and GET /api/sync/verify answers."""
        return {
            "id": self.id,
            "trigger": self.trigger.value,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_s": self.duration_s,
            "deep": self.deep,
            "repair": self.repair,
            "drift": self.drift,
            "by_kind": self.by_kind,
            "samples": [s.id for s in self.samples],
            "sample_drift": [s.to_json() for s in self.samples],
            "repaired": self.repaired,
            "drift_left": self.drift_left,
            "checked": {t.entity_set: t.checked for t in self.tables},
            "pending": sum(t.pending for t in self.tables),
            "pending_by_table": {t.entity_set: t.pending for t in self.tables},
            "by_table": {
                t.entity_set: {k.value: n for k, n in t.by_kind.items()} for t in self.tables
            },
            "dataverse_requests": self.dataverse_requests,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyResult:
        pending = data.get("pending_by_table", {})
        by_table = data.get("by_table", {})
        tables = tuple(
            TableVerify(
                name,
                int(checked),
                int(pending.get(name, 0)),
                {DriftKind(k): int(n) for k, n in by_table.get(name, {}).items()},
            )
            for name, checked in data.get("checked", {}).items()
        )
        return cls(
            id=str(data["id"]),
            trigger=VerifyTrigger(data["trigger"]),
            started_at=parse_iso(data["started_at"]),
            finished_at=parse_iso(data["finished_at"]),
            deep=bool(data.get("deep")),
            repair=bool(data.get("repair")),
            tables=tables,
            samples=tuple(Drift.from_json(s) for s in data.get("sample_drift", [])),
            repaired=int(data.get("repaired", 0)),
            drift_left=int(data.get("drift_left", 0)),
            dataverse_requests=int(data.get("dataverse_requests", 0)),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class VerifyRows:
    """The verify rows as one read found them (a heartbeat asks several questions of them)."""

    requested: VerifyRequest | None = None
    running: VerifyRequest | None = None
    last: VerifyResult | None = None
    clean_at: datetime | None = None  # a verify last finished without error then
    anchor_at: datetime | None = None  # the schedule counts from it before any verify


class VerifyStore(TableRepository):
    """Rows in the state table: the verify asked for (at most one waits), the one under way,
    the last result, when a verify last finished without error, and when the verify schedule
    began counting (the first cycle it saw succeed)."""

    PARTITION = "verify"
    REQUEST, RUNNING, LAST = "request", "running", "last"
    CLEAN, ANCHOR = "clean", "anchor"

    def request(self, wanted: VerifyRequest) -> tuple[VerifyRequest, bool]:
        """Ask for `wanted`, unless a verify is asked for already: (the one that will run,
        whether `wanted` was queued)."""
        try:
            self.table.create_entity(self._row(self.REQUEST, wanted.to_json()))
        except ResourceExistsError:
            current = self.requested()
            if current is not None:
                return current, False
            return self.request(wanted)  # taken meanwhile: ask again
        return wanted, True

    def requested(self) -> VerifyRequest | None:
        data = self._get(self.REQUEST)
        return VerifyRequest.from_json(data) if data is not None else None

    def start(self, request: VerifyRequest) -> None:
        """`request` is under way: it no longer waits."""
        self.table.upsert_entity(
            self._row(self.RUNNING, request.to_json()), mode=UpdateMode.REPLACE
        )
        waiting = self.requested()
        if waiting is not None and waiting.id == request.id:
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(self.PARTITION, self.REQUEST)

    def running(self) -> VerifyRequest | None:
        data = self._get(self.RUNNING)
        return VerifyRequest.from_json(data) if data is not None else None

    def last(self) -> VerifyResult | None:
        data = self._get(self.LAST)
        return VerifyResult.from_json(data) if data is not None else None

    def finished(self, result: VerifyResult) -> None:
        """Keep `result` as the last one; nothing runs any more."""
        self.table.upsert_entity(self._row(self.LAST, result.to_json()), mode=UpdateMode.REPLACE)
        if result.error is None:
            # Kept apart: a failed verify must not reset what the "not verified" alert counts.
            clean = {"id": result.id, "finished_at": iso_precise(result.finished_at)}
            self.table.upsert_entity(self._row(self.CLEAN, clean), mode=UpdateMode.REPLACE)
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, self.RUNNING)

    def last_clean_at(self) -> datetime | None:
        """When a verify last finished without error (its drift aside)."""
        data = self._get(self.CLEAN)
        return parse_iso(data["finished_at"]) if data is not None else None

    def anchor(self, succeeded_at: datetime | None) -> datetime | None:
        """What the schedule counts from before any verify: the first cycle success it was
        shown, kept (the state's `succeeded_at` moves on with every cycle, so counting from it
        would put the first scheduled verify off for ever)."""
        data = self._get(self.ANCHOR)
        if data is None and succeeded_at is not None:
            with contextlib.suppress(ResourceExistsError):  # another host kept one first
                self.table.create_entity(self._row(self.ANCHOR, {"at": iso_precise(succeeded_at)}))
            data = self._get(self.ANCHOR)
        return parse_iso(data["at"]) if data is not None else None

    def rows(self) -> VerifyRows:
        """Every verify row, in one query of the partition."""
        found = {
            str(e["RowKey"]): json.loads(e["body"])
            for e in self.table.query_entities(
                "PartitionKey eq @p", parameters={"p": self.PARTITION}
            )
        }
        request, running, last = (found.get(r) for r in (self.REQUEST, self.RUNNING, self.LAST))
        clean, anchor = found.get(self.CLEAN), found.get(self.ANCHOR)
        return VerifyRows(
            requested=VerifyRequest.from_json(request) if request is not None else None,
            running=VerifyRequest.from_json(running) if running is not None else None,
            last=VerifyResult.from_json(last) if last is not None else None,
            clean_at=parse_iso(clean["finished_at"]) if clean is not None else None,
            anchor_at=parse_iso(anchor["at"]) if anchor is not None else None,
        )

    def _get(self, row: str) -> dict[str, Any] | None:
        entity = entity_or_none(self.table, self.PARTITION, row)
        if entity is None:
            return None
        data: dict[str, Any] = json.loads(entity["body"])
        return data

    def _row(self, row: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"PartitionKey": self.PARTITION, "RowKey": row, "body": json.dumps(body)}
