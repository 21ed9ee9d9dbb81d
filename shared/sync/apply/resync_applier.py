"""The applier of a re-sync batch: one column's Dynamics values written into the mirror.

A value is written only into an account the mirror holds at the very version it was read at:
a mirror that is newer holds a newer Dynamics change a cycle applied (never overwritten with an
older read), and one that is older is about to get the change from the next cycle, with its
activities. Filtered and deleted accounts are left alone. The write replaces the row under the
ETag it was read with (a value emptied must leave the row), drops the column from the local
edits, and logs nothing; a local edit racing it is read again and written over.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import Any

from azure.data.tables import TableEntity

from shared.mapping import UnstorableValue, check_entity, set_column, to_stored
from shared.mirror.conflicts import ConflictRetries, write_on_top
from shared.mirror.feed_index import Stream
from shared.mirror.records import PARALLEL_READS, replace
from shared.mirror.row import (
    column_changes,
    drop_local_edits,
    is_deleted,
    is_sync_filtered,
    version_of,
)
from shared.mirror.writes import run_parallel
from shared.sync.apply.account_applier import MAX_CONFLICT_RETRIES
from shared.sync.apply.context import ApplyContext
from shared.sync.batches import AccountChange
from shared.sync.change_rows import relabel


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
        retries = ConflictRetries(
            MAX_CONFLICT_RETRIES,
            f"account {change.id} kept changing under the re-sync; retry later",
        )
        # A local edit meanwhile: the row is read again and written over.
        return write_on_top(
            old,
            lambda row: self._write(change, row),
            reread=lambda: self.accounts.get(change.id),
            retries=retries,
        )

    def _write(self, change: AccountChange, old: TableEntity | None) -> _Outcome:
        """Write the column into `old` under its ETag (ResourceModifiedError if it changed)."""
        if old is None or is_deleted(old) or is_sync_filtered(old):
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
        replace(self.accounts.table, entity, etag=str(old.metadata["etag"]))
        return _Outcome.REFRESHED

    def _refreshed(self, change: AccountChange, old: TableEntity) -> dict[str, Any] | None:
        """The row with the batch's columns as Dynamics has them; None when it has them."""
        entity: dict[str, Any] = dict(old)
        columns = self.context.batch.columns
        stored = {c: to_stored(c, kind, change.values.get(c)) for c, kind in columns.items()}
        refreshed = column_changes(old, stored)
        for column in refreshed:
            set_column(entity, column.field, stored[column.field])
        # The labels too (a label alone changed, or the value came with its new one).
        relabelled = relabel(entity, columns, change)
        unmarked = drop_local_edits(entity, old, columns)
        if not (refreshed or relabelled or unmarked):
            return None
        check_entity(entity)
        return entity
