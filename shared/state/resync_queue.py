"""Re-syncs of one account column (Marketo's Quick Sync and Advanced Sync), queued in order.

Each request is one row, moved on only with an ETag condition: queued, then read a chunk per
cycle (its position in the plain query is kept here, not in the cycle's checkpoints: it spans
cycles), then applying its last batches, then finished or cancelled. One runs at a time, the
oldest first.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime
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

KEEP_FINISHED = 20  # finished requests kept for status


class ResyncKind(StrEnum):
    QUICK = "quick"  # every account
    ADVANCED = "advanced"  # the accounts created or modified in a date range


class ResyncStatus(StrEnum):
    QUEUED = "queued"
    READING = "reading"  # a chunk of its rows is read in each cycle
    APPLYING = "applying"  # every row is read; its last batches are being applied
    FINISHED = "finished"
    CANCELLED = "cancelled"  # the column cannot be read any more; `message` says why

    @property
    def active(self) -> bool:
        return self in (ResyncStatus.QUEUED, ResyncStatus.READING, ResyncStatus.APPLYING)


_TIMES = ("requested_at", "modified_since", "modified_until", "started_at", "finished_at")


@dataclass(frozen=True)
class Resync:
    id: str
    field: str
    kind: ResyncKind
    requested_at: datetime
    requested_by: str
    modified_since: datetime | None = None
    modified_until: datetime | None = None
    status: ResyncStatus = ResyncStatus.QUEUED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_link: str | None = None  # the next page of its query; None before the first
    rows_read: int = 0
    pages: int = 0
    total: int | None = None  # accounts Dynamics had when a Quick Sync began
    batches: int = 0
    refreshed: int = 0  # accounts whose value it wrote (applied batches)
    cycle_id: str = ""  # the cycle that read its last page
    message: str = ""
    # The dataclass has a `field` of its own (the column).
    etag: str | None = dataclasses.field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("etag")
        data.pop("next_link")
        for name in _TIMES:
            data[name] = iso(getattr(self, name))
        data["kind"], data["status"] = self.kind.value, self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, etag: str | None = None) -> Resync:
        values = {**data, "kind": ResyncKind(data["kind"]), "status": ResyncStatus(data["status"])}
        for name in _TIMES:
            values[name] = parse_iso(data[name]) if data.get(name) else None
        known = {name for name in cls.__dataclass_fields__ if name != "etag"}
        return cls(**{k: v for k, v in values.items() if k in known}, etag=etag)


def new_resync(
    column: str,
    *,
    now: datetime,
    by: str,
    modified_since: datetime | None = None,
    modified_until: datetime | None = None,
) -> Resync:
    ranged = modified_since is not None or modified_until is not None
    return Resync(
        id=f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}",  # sorts in request order
        field=column,
        kind=ResyncKind.ADVANCED if ranged else ResyncKind.QUICK,
        requested_at=now,
        requested_by=by,
        modified_since=modified_since,
        modified_until=modified_until,
    )


class Resyncs(TableRepository):
    """One row per request in the state table, in request order."""

    PARTITION = "resync"

    def all(self) -> list[Resync]:
        rows = self.table.query_entities("PartitionKey eq @p", parameters={"p": self.PARTITION})
        return [Resync.from_json(json.loads(r["resync"]), etag=r.metadata["etag"]) for r in rows]

    def get(self, resync_id: str) -> Resync | None:
        row = entity_or_none(self.table, self.PARTITION, resync_id)
        if row is None:
            return None
        return Resync.from_json(json.loads(row["resync"]), etag=row.metadata["etag"])

    def active(self) -> list[Resync]:
        return [r for r in self.all() if r.status.active]

    def current(self) -> Resync | None:
        """The one that runs now: the oldest still active."""
        return next(iter(self.active()), None)

    def add(self, request: Resync) -> Resync:
        entity = self._entity(request)
        meta = self.table.create_entity(entity)
        self._prune()
        return replace(request, etag=meta["etag"])

    def save(self, request: Resync) -> Resync | None:
        """Store `request` if its row is still the one it was read as; None if it moved."""
        try:
            meta = self.table.update_entity(
                self._entity(request),
                mode=UpdateMode.REPLACE,
                etag=request.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceExistsError):
            return None
        return replace(request, etag=meta["etag"])

    def _entity(self, request: Resync) -> dict[str, Any]:
        data = {**request.to_json(), "next_link": request.next_link}
        return {"PartitionKey": self.PARTITION, "RowKey": request.id, "resync": json.dumps(data)}

    def _prune(self) -> None:
        done = [r for r in self.all() if not r.status.active]
        for old in done[:-KEEP_FINISHED]:
            self.table.delete_entity(self.PARTITION, old.id)
