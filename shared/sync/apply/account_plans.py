"""What the apply step writes for one account change: the row, how, and which fields changed.

A change whose version is not newer than the mirrored one writes only what the mirror lacks
(newly selected columns, labels, a wrong deletion flag cleared) or, for a re-load, the stamp of
its generation. A newer one replaces the batch's columns whole; the other properties of the
row (columns the batch does not carry, a local edit's record) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableEntity, TransactionOperation, UpdateMode

from shared.mapping import (
    UnstorableValue,
    check_entity,
    column_of,
    read_column,
    set_column,
    set_label,
    to_stored,
)
from shared.mirror.feed_index import Stream
from shared.mirror.records import bucket
from shared.mirror.row import (
    BOOKKEEPING,
    DELETED_AT,
    GENERATION,
    IS_DELETED,
    MODIFIED_ON,
    VERSION,
    FieldChange,
    column_changes,
    drop_local_edits,
    is_deleted,
    is_sync_filtered,
    put_local_edits,
    version_of,
    version_property,
)
from shared.sync.apply.context import ApplyContext
from shared.sync.batches import AccountChange
from shared.sync.change_rows import relabel


@dataclass(frozen=True)
class AccountPlan:
    change: AccountChange
    entity: dict[str, Any]
    etag: str | None  # None: the row is new
    diff: list[FieldChange] = field(default_factory=list)  # what logs activities
    stamp_only: bool = False  # unchanged in Dynamics: only a re-load's generation is written

    def operation(self) -> tuple[Any, ...]:
        """The write as an entity-group transaction's operation."""
        if self.etag is None:
            return (TransactionOperation.CREATE, self.entity)
        if self.stamp_only:
            return (TransactionOperation.UPDATE, self.entity, {"mode": UpdateMode.MERGE})
        return (
            TransactionOperation.UPDATE,
            self.entity,
            {
                "mode": UpdateMode.REPLACE,
                "etag": self.etag,
                "match_condition": MatchConditions.IfNotModified,
            },
        )


class AccountPlanner:
    def __init__(self, context: ApplyContext):
        self.context = context

    def plan(self, change: AccountChange, old: TableEntity | None) -> AccountPlan | None:
        """What to write for `change` over the mirrored row `old`; None: nothing."""
        assert change.version is not None
        # A marked account is applied whole whatever its version: the filter let it in again
        # (its column gone or unreadable reads the table again, at the same versions).
        if (
            old is not None
            and self.context.skips(old, change.id, change.version)
            and not is_sync_filtered(old)
        ):
            return self._unchanged(change, old)
        try:
            entity = self._row(change, old)
        except UnstorableValue as error:
            self.context.error("account", change.id, "update", str(error))
            return self._stamp(change, old)
        if old is None:
            return AccountPlan(change, entity, None)
        return AccountPlan(change, entity, old.metadata["etag"], self._diff(old, entity))

    def _row(self, change: AccountChange, old: TableEntity | None) -> dict[str, Any]:
        """The row with the change's values; UnstorableValue for one the mirror cannot hold."""
        assert change.version is not None
        batch = self.context.batch
        entity: dict[str, Any] = {}
        if old is not None:
            # Columns this batch does not carry (deselected, or no longer readable) keep
            # their mirrored values; the batch's own columns are replaced whole.
            entity.update(
                (k, v)
                for k, v in old.items()
                if column_of(k) not in batch.columns and k not in BOOKKEEPING
            )
        entity.update(PartitionKey=bucket(change.id), RowKey=change.id)
        for column, kind in batch.columns.items():
            set_column(entity, column, to_stored(column, kind, change.values.get(column)))
            set_label(entity, column, change.labels.get(column))
        self.context.sync_mark(Stream.SYNCED_ACCOUNTS).put(entity)
        entity[VERSION] = version_property(change.version)
        entity[IS_DELETED] = False
        put_local_edits(entity, [])  # Dynamics' values overwrite every local edit
        entity[GENERATION] = self.context.generation(old)
        if change.modified_on:
            entity[MODIFIED_ON] = change.modified_on
        if old is not None and is_deleted(old) and not self.context.revives(old):
            # Read before Dynamics deleted it: its values, but not the record back.
            entity.update({IS_DELETED: True, DELETED_AT: old.get(DELETED_AT)})
        check_entity(entity)
        return entity

    def _diff(self, old: TableEntity, entity: dict[str, Any]) -> list[FieldChange]:
        """The fields whose change logs activities. An account the filter kept out comes back
        as a first load of it: no activities; nor does a deleted one, whose contacts no longer
        see it; a newly selected column loads silently."""
        if self.context.first_load or is_sync_filtered(old) or is_deleted(entity):
            return []
        batch = self.context.batch
        compared = [c for c in batch.columns if c not in batch.backfill]
        return column_changes(old, {c: read_column(entity, c) for c in compared})

    def _unchanged(self, change: AccountChange, old: TableEntity) -> AccountPlan | None:
        """An account Dynamics has not changed: newly selected columns may need values, a
        re-load stamps the rows it saw, and a deletion flag it wrongly carries (Dynamics has
        it) is cleared, silently: no value changed."""
        entity: dict[str, Any] = {**old, "PartitionKey": old["PartitionKey"], "RowKey": change.id}
        changed = self.context.revives(old)
        if changed:
            entity.pop(DELETED_AT, None)
            entity[IS_DELETED] = False
        try:
            changed = self._fill_in(entity, change, old) or changed
            check_entity(entity)
        except UnstorableValue as error:
            self.context.error("account", change.id, "backfill", str(error))
            return self._stamp(change, old)
        if changed:
            entity[GENERATION] = self.context.generation(old)
            # Filled in now, as a re-sync would: `modified_since` readers get it again, once
            # (an entry under the old `synced_at` would be a second one for the same sync).
            self.context.sync_mark(Stream.SYNCED_ACCOUNTS).put(entity)
            return AccountPlan(change, entity, old.metadata["etag"])
        self.context.result.skipped += 1
        return self._stamp(change, old)

    def _fill_in(self, entity: dict[str, Any], change: AccountChange, old: TableEntity) -> bool:
        """Put the newly selected columns' values and the version's labels into `entity`;
        whether anything changed. UnstorableValue for a value the mirror cannot hold."""
        batch = self.context.batch
        backfill = {
            column: to_stored(column, kind, change.values.get(column))
            for column in batch.backfill
            if (kind := batch.columns.get(column)) is not None
        }
        filled = column_changes(old, backfill)
        for filled_in in filled:
            set_column(entity, filled_in.field, backfill[filled_in.field])
        # A column selected again is loaded over a local edit made before it was dropped.
        unmarked = drop_local_edits(entity, old, batch.backfill)
        # The labels of the same version (an account mirrored before labels were, read
        # again): an older version's would not fit the values.
        relabelled = version_of(old) == change.version and relabel(entity, batch.columns, change)
        return bool(filled) or unmarked or relabelled

    def _stamp(self, change: AccountChange, old: TableEntity | None) -> AccountPlan | None:
        """A re-load saw this row: only its generation is written (its values stay as they
        are: unchanged, or the last good ones of a change the mirror cannot hold), so the
        sweep does not flag it deleted."""
        stamp = self.context.reload_stamp(old)
        if old is None or stamp is None:
            return None
        return AccountPlan(change, stamp, old.metadata["etag"], stamp_only=True)
