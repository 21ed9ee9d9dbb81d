"""The applier of a re-sync batch: one column's Dynamics values written into the mirror.

A value is written only into an account the mirror holds at the very version it was read at:
a mirror that is newer holds a newer Dynamics change a cycle applied (never overwritten with an
older read), and one that is older is about to get the change from the next cycle, with its
activities. Filtered and deleted accounts are left alone. The write replaces the row under the
ETag it was read with (a value emptied must leave the row), drops the column from the local
edits, and logs nothing; a local edit racing it is read again and written over.
"""

from __future__ import annotations

import json
from enum import Enum, auto
from typing import Any

from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableEntity

from shared.mapping import (
    UnstorableValue,
    check_entity,
    read_column,
    set_column,
    to_json,
    to_stored,
)
from shared.mirror.feed import Stream
from shared.mirror.records import PARALLEL_READS, replace, version_of
from shared.mirror.writes import run_parallel
from shared.sync.apply.accounts import MAX_CONFLICT_RETRIES
from shared.sync.apply.context import ApplyContext
from shared.sync.apply.rows import relabel
from shared.sync.batches import AccountChange


class _Outcome(Enum):
    REFRESHED = auto()
    SKIPPED = auto()
    ERROR = auto()


class ResyncApplier:
    def __init__(self, context: ApplyContext):
        self.context = context
        self.accounts = context.services.accounts

    def apply(self, changes: list[AccountChange]) -> None:
        existing = self.accounts.get_many(c.id for c in changes)
        outcomes = run_parallel(
            lambda c: self._refresh(c, existing.get(c.id)), changes, width=PARALLEL_READS
        )
        result = self.context.result
        result.refreshed += outcomes.count(_Outcome.REFRESHED)
        result.skipped += outcomes.count(_Outcome.SKIPPED)

    def _refresh(self, change: AccountChange, old: TableEntity | None) -> _Outcome:
        for _ in range(MAX_CONFLICT_RETRIES):
            if old is None or old.get("is_deleted") or old.get("sync_filtered"):
                return _Outcome.SKIPPED
            if version_of(old) != change.version:
                return _Outcome.SKIPPED
            try:
                entity = self._refreshed(change, old)
            except UnstorableValue as error:
                self.context.error("account", change.id, "resync", str(error))
                return _Outcome.ERROR
            if entity is None:
                return _Outcome.SKIPPED
            # A refreshed account is synced now: `modified_since` readers get it again.
            self.context.sync_mark(Stream.SYNCED_ACCOUNTS).put(entity)
            self.context.synced(Stream.SYNCED_ACCOUNTS, [entity])
            try:
                replace(self.accounts.table, entity, etag=str(old.metadata["etag"]))
            except ResourceModifiedError:
                old = self.accounts.get(change.id)  # a local edit meanwhile: over it again
                continue
            return _Outcome.REFRESHED
        raise RuntimeError(f"account {change.id} kept changing under the re-sync; retry later")

    def _refreshed(self, change: AccountChange, old: TableEntity) -> dict[str, Any] | None:
        """The row with the batch's columns as Dynamics has them; None when it has them."""
        entity: dict[str, Any] = dict(old)
        columns = self.context.batch.columns
        changed = False
        for column, kind in columns.items():
            stored = to_stored(column, kind, change.values.get(column))
            if to_json(read_column(old, column)) != to_json(stored):
                set_column(entity, column, stored)
                changed = True
        # The labels too (a label alone changed, or the value came with its new one).
        changed = relabel(entity, columns, change) or changed
        marks = json.loads(old.get("locally_modified") or "[]")
        kept = [m for m in marks if m not in columns]
        if kept != marks:
            entity["locally_modified"] = json.dumps(kept)
            changed = True
        if not changed:
            return None
        check_entity(entity)
        return entity
