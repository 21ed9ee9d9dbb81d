"""The applier of a batch's account changes.

A change whose version is not newer than the mirrored one is skipped (only newly selected
columns are filled in, and a re-load stamps its generation). Rows are replaced under the ETag
they were read with, so a local edit that races the apply is never silently lost: the account
is read again and the change applied on top. Activities are written before the rows, so a
crash between the two is redone in full on redelivery.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableEntity, TableTransactionError, TransactionOperation, UpdateMode

from shared.mapping import (
    UnstorableValue,
    check_entity,
    column_of,
    read_column,
    set_column,
    set_label,
    to_json,
    to_stored,
)
from shared.mirror.activities import ActivityWriter
from shared.mirror.feed import Stream
from shared.mirror.records import PARALLEL_READS, bucket, generation_of, replace, version_of
from shared.mirror.search import SearchKind
from shared.mirror.writes import MAX_TRANSACTION_ENTITIES, run_parallel
from shared.sync.apply.activities import FanOut, FieldChange, FieldsChanged, fan_out
from shared.sync.apply.context import ApplyContext, change_time
from shared.sync.apply.filtered import keep_out
from shared.sync.apply.rows import BOOKKEEPING, relabel, version_property
from shared.sync.apply.search import index_rows, index_unchanged
from shared.sync.batches import AccountChange

SYNC_REASON = "Account field changed in Dynamics"
SYNC_SOURCE = "Dynamics sync"
# A local edit that lands between the apply step's read and its conditional write makes the
# write fail; the step re-reads and tries again. Edits made back to back could win every
# immediate retry (the step logs activities between read and write), so the retries back off
# with jitter and give up only after many: the Dynamics change must win over the edits. Two
# clients editing one account in tight loops (the race test) make about four attempts in five
# lose (more often since edits got faster, most likely as their stamp is claimed without a
# read first): 20 attempts lost now and then (the test failed 1 run in 3); 50 leave about one
# such account in 30,000 to its batch's redelivery.
MAX_CONFLICT_RETRIES = 50
CONFLICT_BACKOFF_CAP_S = 0.5


@dataclass
class _Plan:
    change: AccountChange
    entity: dict[str, Any]
    etag: str | None
    diff: list[FieldChange] = field(default_factory=list)
    stamp_only: bool = False  # unchanged in Dynamics: only a re-load's generation is written

    def operation(self) -> tuple[Any, ...]:
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


class AccountApplier:
    def __init__(self, context: ApplyContext):
        self.context = context
        self.table = context.services.accounts.table
        # Fields whose activities were counted, per account: a change applied again after a
        # conflict rewrites its activities (same keys) but does not count them twice.
        self._counted: dict[str, set[str]] = defaultdict(set)

    def apply(self, changes: list[AccountChange]) -> None:
        live = [c for c in changes if not c.deleted and not c.filtered]
        first_load = self.context.first_load
        if first_load and not any(c.deleted for c in changes):
            existing: dict[str, TableEntity] = {}  # rows met on the way are re-read alone
        else:
            existing = self.context.services.accounts.get_many(c.id for c in changes)
        keep_out(self.context, [c for c in changes if c.filtered], existing)
        plans = [p for c in live if (p := self._plan(c, existing.get(c.id)))]
        written = [p.entity for p in plans if not p.stamp_only]
        index_rows(self.context, SearchKind.ACCOUNT, written, existing)
        unchanged = (existing[p.change.id] for p in plans if p.stamp_only)
        index_unchanged(self.context, SearchKind.ACCOUNT, unchanged)
        self._log_activities(plans)
        self.context.synced(Stream.SYNCED_ACCOUNTS, (p.entity for p in plans if not p.stamp_only))
        for change in self._write_groups(plans):
            self._apply_alone(change)
        for change in changes:
            if change.deleted:
                self._delete(change, existing.get(change.id))
        if not first_load:
            # Kept out until now (new to the mirror, or No → Yes): the filter lets it in.
            let_in = [
                c.id
                for c in live
                if (old := existing.get(c.id)) is None or old.get("sync_filtered")
            ]
            if let_in:
                run_parallel(self.context.services.filtered.remove, let_in, width=PARALLEL_READS)

    def _plan(self, change: AccountChange, old: TableEntity | None) -> _Plan | None:
        assert change.version is not None
        # A marked account is applied whole whatever its version: the filter let it in again
        # (its column gone or unreadable reads the table again, at the same versions).
        if (
            old is not None
            and self.context.skips(old, change.id, change.version)
            and not old.get("sync_filtered")
        ):
            return self._plan_unchanged(change, old)
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
        try:
            for column, kind in batch.columns.items():
                set_column(entity, column, to_stored(column, kind, change.values.get(column)))
                set_label(entity, column, change.labels.get(column))
            self.context.sync_mark(Stream.SYNCED_ACCOUNTS).put(entity)
            entity.update(
                version=version_property(change.version),
                is_deleted=False,
                locally_modified="[]",
                generation=batch.generation if self.context.reload else _generation(old),
            )
            if change.modified_on:
                entity["modified_on"] = change.modified_on
            if old is not None and old.get("is_deleted") and not self.context.revives(old):
                # Read before Dynamics deleted it: its values, but not the record back.
                entity.update(is_deleted=True, deleted_at=old.get("deleted_at"))
            check_entity(entity)
        except UnstorableValue as error:
            self.context.error("account", change.id, "update", str(error))
            return self._stamp(change, old)
        plan = _Plan(change, entity, old.metadata["etag"] if old is not None else None)
        # An account the filter kept out comes back as a first load of it: no activities;
        # nor does a deleted one, whose contacts no longer see it.
        if (
            old is not None
            and not self.context.first_load
            and not old.get("sync_filtered")
            and not entity["is_deleted"]
        ):
            for column in batch.columns:
                if column in batch.backfill:
                    continue  # a newly selected column loads silently
                before = to_json(read_column(old, column))
                after = to_json(read_column(entity, column))
                if before != after:
                    plan.diff.append(FieldChange(column, before, after))
        return plan

    def _plan_unchanged(self, change: AccountChange, old: TableEntity) -> _Plan | None:
        """An account Dynamics has not changed: newly selected columns may need values, a
        re-load stamps the rows it saw, and a deletion flag it wrongly carries (Dynamics has
        it) is cleared, silently: no value changed."""
        batch = self.context.batch
        entity: dict[str, Any] = {**old, "PartitionKey": old["PartitionKey"], "RowKey": change.id}
        changed = self.context.revives(old)
        if changed:
            entity.pop("deleted_at", None)
            entity["is_deleted"] = False
        try:
            for column in batch.backfill:
                kind = batch.columns.get(column)
                if kind is None:
                    continue
                stored = to_stored(column, kind, change.values.get(column))
                if to_json(read_column(old, column)) != to_json(stored):
                    changed = True
                    set_column(entity, column, stored)
            # A column selected again is loaded over a local edit made before it was dropped.
            marks = json.loads(old.get("locally_modified") or "[]")
            if (kept := [m for m in marks if m not in batch.backfill]) != marks:
                changed = True
                entity["locally_modified"] = json.dumps(kept)
            # The labels of the same version (an account mirrored before labels were, read
            # again): an older version's would not fit the values.
            if version_of(old) == change.version and relabel(entity, batch.columns, change):
                changed = True
            check_entity(entity)
        except UnstorableValue as error:
            self.context.error("account", change.id, "backfill", str(error))
            return self._stamp(change, old)
        if changed:
            entity["generation"] = batch.generation if self.context.reload else _generation(old)
            # Filled in now, as a re-sync would: `modified_since` readers get it again, once
            # (an entry under the old `synced_at` would be a second one for the same sync).
            self.context.sync_mark(Stream.SYNCED_ACCOUNTS).put(entity)
            return _Plan(change, entity, old.metadata["etag"])
        self.context.result.skipped += 1
        return self._stamp(change, old)

    def _stamp(self, change: AccountChange, old: TableEntity | None) -> _Plan | None:
        """A re-load saw this row: only its generation is written (its values stay as they
        are: unchanged, or the last good ones of a change the mirror cannot hold), so the
        sweep does not flag it deleted."""
        batch = self.context.batch
        if old is None or not self.context.reload or generation_of(old) == batch.generation:
            return None
        keys = {"PartitionKey": old["PartitionKey"], "RowKey": change.id}
        stamp = {**keys, "generation": batch.generation}
        return _Plan(change, stamp, old.metadata["etag"], stamp_only=True)

    def _event(self, plan: _Plan) -> FieldsChanged:
        change = plan.change
        return FieldsChanged(
            account_id=change.id,
            changes=plan.diff,
            change_key=f"v{change.version:020d}",
            at=change_time(change.modified_on) or self.context.now,
            reason=SYNC_REASON,
            source=SYNC_SOURCE,
        )

    def _log_activities(self, plans: list[_Plan]) -> None:
        """The activities of every changed account of the batch, streamed into one writer:
        grouped by contact partition they fill transactions that one account's few contacts
        could not, and no more than the writer's bound is held at a time. The threshold rule
        of each account is one query of its own: a few run side by side."""
        changed = [p for p in plans if p.diff]
        if not changed:
            return
        writer = ActivityWriter(self.context.services.activities.table, feed=self.context.feed)
        for start in range(0, len(changed), PARALLEL_READS):
            chunk = changed[start : start + PARALLEL_READS]
            events = [self._event(p) for p in chunk]
            fans = run_parallel(
                lambda e: fan_out(self.context.services, e), events, width=PARALLEL_READS
            )
            for event, fan in zip(events, fans, strict=True):
                for activity in event.activities(fan.contacts):
                    writer.add(activity)
                self._count(event, fan)
        writer.flush()

    def _count(self, event: FieldsChanged, fan: FanOut) -> None:
        counted = self._counted[event.account_id]
        new = {c.field for c in event.changes} - counted
        counted |= new
        result = self.context.result
        if fan.contacts:
            result.activities_logged += len(fan.contacts) * len(new)
        elif fan.fields:
            result.activities_suppressed += fan.suppressed // fan.fields * len(new)

    def _write_groups(self, plans: list[_Plan]) -> list[AccountChange]:
        """Write plans in entity-group transactions; return the changes that met a conflict."""
        groups: dict[str, list[_Plan]] = defaultdict(list)
        for plan in plans:
            groups[plan.entity["PartitionKey"]].append(plan)
        conflicted: list[AccountChange] = []
        for group in groups.values():
            for start in range(0, len(group), MAX_TRANSACTION_ENTITIES):
                chunk = group[start : start + MAX_TRANSACTION_ENTITIES]
                try:
                    if len(chunk) == 1:
                        # The same conditional write without the transaction envelope, which
                        # costs three times the CPU of the write itself.
                        self._write(chunk[0])
                    else:
                        self.table.submit_transaction([p.operation() for p in chunk])
                except (TableTransactionError, ResourceModifiedError, ResourceExistsError):
                    conflicted.extend(p.change for p in chunk)
                    continue
                for plan in chunk:
                    self._applied(plan)
        return conflicted

    def _apply_alone(self, change: AccountChange) -> None:
        """Re-read and re-apply one account until its ETag condition holds."""
        services = self.context.services
        for attempt in range(MAX_CONFLICT_RETRIES):
            if attempt:
                time.sleep(random.uniform(0, min(CONFLICT_BACKOFF_CAP_S, 0.01 * 2**attempt)))
            plan = self._plan(change, services.accounts.get(change.id))
            if plan is None:
                return
            self._log_activities([plan])
            if not plan.stamp_only:
                self.context.synced(Stream.SYNCED_ACCOUNTS, [plan.entity])
            try:
                self._write(plan)
            except (ResourceModifiedError, ResourceExistsError):
                continue
            self._applied(plan)
            return
        raise RuntimeError(f"account {change.id} kept changing under the apply step; retry later")

    def _write(self, plan: _Plan) -> None:
        if plan.etag is None:
            self.table.create_entity(plan.entity)
        elif plan.stamp_only:
            self.table.update_entity(plan.entity, mode=UpdateMode.MERGE)
        else:
            replace(self.table, plan.entity, etag=plan.etag)

    def _applied(self, plan: _Plan) -> None:
        if not plan.stamp_only:  # a stamp was counted as skipped when planned
            self.context.result.accounts_applied += 1
            if plan.etag is None:
                self.context.result.added += 1
            self.context.lag(plan.change.modified_on)

    def _delete(self, change: AccountChange, old: TableEntity | None) -> None:
        if old is None or old.get("is_deleted"):
            self.context.result.skipped += 1
            return
        self.context.deleted("account", [change.id])
        self.table.update_entity(
            {
                "PartitionKey": bucket(change.id),
                "RowKey": change.id,
                "is_deleted": True,
                "deleted_at": self.context.now,
            },
            mode=UpdateMode.MERGE,
        )
        self.context.result.accounts_applied += 1
        self.context.result.removed += 1


def _generation(old: TableEntity | None) -> int:
    return generation_of(old) if old is not None else 0
