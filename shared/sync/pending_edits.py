"""What a local edit owes: its activities, recorded on the row that shows the edit.

An edit writes the account row and, in the same conditional write, the record of the
activities it owes (its key, its time, and each changed field's old and new value exactly as
the activities show them). Then it logs those activities, then writes the row again without
the record. A crash or storage error at any point leaves one of two states:

- the row unchanged: the edit did not happen, and nothing of it was logged;
- the row edited, with its record: the activities are owed, and whoever meets the row next
  through an edit (the client's retry of the same PATCH, or any later edit of the account)
  logs them before doing anything else.

The activities' keys and times come from the record, so logging them again (a completion
that ran twice, or one that failed half-way) rewrites the same activities and change-feed
entries: nothing is logged twice. The apply step and the re-sync keep the properties of a row
they do not own, so a Dynamics change that overwrites the edit keeps its record, too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceModifiedError

from shared.mapping import ActivityValue, activity_value
from shared.mirror.records import replace
from shared.mirror.row import FieldChange
from shared.services import Services
from shared.sync.apply.change_activities import FieldsChanged, log_change_activities
from shared.times import utcnow

EDIT_SOURCE = "acctsync API"
RECORD = "pending_edit"  # JSON: key, at_ms, contact, fields (with truncation marks)
# One property per value: each holds up to the 30,000 units an activity value is cut to.
_OLD, _NEW = "pending_old_", "pending_new_"


@dataclass(frozen=True)
class PendingEdit:
    """A local edit's activities, as its row records them until they are logged."""

    key: str
    at: datetime
    contact_id: str
    changes: list[FieldChange]  # old and new as ActivityValue

    @classmethod
    def new(
        cls, *, account_id: str, etag: str, contact_id: str, changes: list[FieldChange]
    ) -> PendingEdit:
        """An edit of the row read with `etag`; its key is the same for the same edit of the
        same row, however often it is built."""
        encoded = [FieldChange(c.field, _encoded(c.old), _encoded(c.new)) for c in changes]
        what = json.dumps([account_id, etag, [(c.field, c.new.text) for c in encoded]])
        key = "e" + hashlib.sha256(what.encode()).hexdigest()[:32]
        now = utcnow()  # kept to the millisecond, as the record keeps it
        return cls(
            key, now.replace(microsecond=now.microsecond // 1000 * 1000), contact_id, encoded
        )

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> PendingEdit | None:
        """The edit a row still owes activities for, if any."""
        recorded = row.get(RECORD)
        if not recorded:
            return None
        record = json.loads(str(recorded))
        changes = [
            FieldChange(
                field,
                ActivityValue(str(row[f"{_OLD}{index}"]), old_cut),
                ActivityValue(str(row[f"{_NEW}{index}"]), new_cut),
            )
            for index, (field, old_cut, new_cut) in enumerate(record["fields"])
        ]
        at = datetime.fromtimestamp(record["at_ms"] / 1000, UTC)
        return cls(record["key"], at, record["contact"], changes)

    def properties(self) -> dict[str, Any]:
        """The record as row properties."""
        fields = [(c.field, c.old.truncated, c.new.truncated) for c in self.changes]
        at_ms = int(self.at.timestamp() * 1000)
        record = {"key": self.key, "at_ms": at_ms, "contact": self.contact_id, "fields": fields}
        properties: dict[str, Any] = {RECORD: json.dumps(record)}
        for index, change in enumerate(self.changes):
            properties[f"{_OLD}{index}"] = change.old.text
            properties[f"{_NEW}{index}"] = change.new.text
        return properties

    def sets(self, contact_id: str, values: Mapping[str, Any]) -> bool:
        """Whether this is the edit of `values` through `contact_id` (a retry of it)."""
        wanted = {field: _encoded(value).text for field, value in values.items()}
        return contact_id == self.contact_id and wanted == {
            c.field: c.new.text for c in self.changes
        }

    def event(self, account_id: str) -> FieldsChanged:
        return FieldsChanged(
            account_id=account_id,
            changes=self.changes,
            change_key=self.key,
            at=self.at,
            reason=f"Local edit through contact {self.contact_id}",
            source=EDIT_SOURCE,
        )


def without_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's properties without a pending edit's record."""
    return {k: v for k, v in row.items() if k != RECORD and not k.startswith((_OLD, _NEW))}


def log_owed(services: Services, account_id: str, pending: PendingEdit) -> tuple[int, int]:
    """Log the activities an edit owes; returns (logged, suppressed). Safe to repeat."""
    return log_change_activities(services, pending.event(account_id))


def settle(services: Services, row: Mapping[str, Any], *, etag: str) -> None:
    """Drop a logged edit's record from the row, unless the row changed since `etag` (then
    whoever meets the record next logs its activities again, under the same keys)."""
    with contextlib.suppress(ResourceModifiedError):
        replace(services.accounts.table, without_record(row), etag=etag)


def _encoded(value: Any) -> ActivityValue:
    return ActivityValue(*activity_value(value))
