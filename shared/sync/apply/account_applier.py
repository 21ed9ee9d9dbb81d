"""The applier of a batch's account changes.

Each change is planned (shared/sync/apply/account_plans.py), its activities logged
(account_activities.py), and its row written. Rows are replaced under the ETag they were read
with, so a local edit that races the apply is never silently lost: the account is read again
and the change applied on top. Activities are written before the rows, so a crash between the
two is redone in full on redelivery.
"""

from __future__ import annotations

from collections import defaultdict

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode

from shared.mirror.conflicts import ConflictRetries, write_on_top
from shared.mirror.feed_index import Stream
from shared.mirror.records import PARALLEL_READS, bucket, replace
from shared.mirror.row import DELETED_AT, IS_DELETED, is_deleted, is_sync_filtered
from shared.mirror.search import SearchKind
from shared.mirror.writes import MAX_TRANSACTION_ENTITIES, run_parallel
from shared.sync.apply.account_activities import AccountActivities
from shared.sync.apply.account_plans import AccountPlan, AccountPlanner
from shared.sync.apply.context import ApplyContext
from shared.sync.apply.kept_out import keep_out
from shared.sync.apply.search_entries import index_rows, index_unchanged
from shared.sync.batches import AccountChange

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


class AccountApplier:
    def __init__(self, context: ApplyContext):
        self.context = context
        self.table = context.services.accounts.table
        self.planner = AccountPlanner(context)
        self.activities = AccountActivities(context)

    def apply(self, changes: list[AccountChange]) -> None:
        live = [c for c in changes if not c.deleted and not c.filtered]
        if self.context.first_load and not any(c.deleted for c in changes):
            existing: dict[str, TableEntity] = {}  # rows met on the way are re-read alone
        else:
            existing = self.context.services.accounts.get_many(c.id for c in changes)
        keep_out(self.context, [c for c in changes if c.filtered], existing)
        plans = [p for c in live if (p := self.planner.plan(c, existing.get(c.id)))]
        written = [p.entity for p in plans if not p.stamp_only]
        index_rows(self.context, SearchKind.ACCOUNT, written, existing)
        unchanged = (existing[p.change.id] for p in plans if p.stamp_only)
        index_unchanged(self.context, SearchKind.ACCOUNT, unchanged)
        self.activities.log(plans)
        self.context.synced(Stream.SYNCED_ACCOUNTS, written)
        for change in self._write_groups(plans):
            self._apply_alone(change)
        for change in changes:
            if change.deleted:
                self._delete(change, existing.get(change.id))
        if not self.context.first_load:
            self._let_in(live, existing)

    def _let_in(self, live: list[AccountChange], existing: dict[str, TableEntity]) -> None:
        """Accounts kept out until now (new to the mirror, or No → Yes): the filter lets
        them in."""
        let_in = [
            c.id for c in live if (old := existing.get(c.id)) is None or is_sync_filtered(old)
        ]
        if let_in:
            run_parallel(self.context.services.filtered.remove, let_in, width=PARALLEL_READS)

    def _write_groups(self, plans: list[AccountPlan]) -> list[AccountChange]:
        """Write plans in entity-group transactions; return the changes that met a conflict."""
        groups: dict[str, list[AccountPlan]] = defaultdict(list)
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

        def read() -> TableEntity | None:
            return self.context.services.accounts.get(change.id)

        def apply(old: TableEntity | None) -> None:
            plan = self.planner.plan(change, old)
            if plan is None:
                return
            self.activities.log([plan])
            if not plan.stamp_only:
                self.context.synced(Stream.SYNCED_ACCOUNTS, [plan.entity])
            self._write(plan)
            self._applied(plan)

        retries = ConflictRetries(
            MAX_CONFLICT_RETRIES,
            f"account {change.id} kept changing under the apply step; retry later",
            backoff_cap_s=CONFLICT_BACKOFF_CAP_S,
        )
        write_on_top(read(), apply, reread=read, retries=retries)

    def _write(self, plan: AccountPlan) -> None:
        if plan.etag is None:
            self.table.create_entity(plan.entity)
        elif plan.stamp_only:
            self.table.update_entity(plan.entity, mode=UpdateMode.MERGE)
        else:
            replace(self.table, plan.entity, etag=plan.etag)

    def _applied(self, plan: AccountPlan) -> None:
        if not plan.stamp_only:  # a stamp was counted as skipped when planned
            self.context.result.accounts_applied += 1
            if plan.etag is None:
                self.context.result.added += 1
            self.context.lag(plan.change.modified_on)

    def _delete(self, change: AccountChange, old: TableEntity | None) -> None:
        if old is None or is_deleted(old):
            self.context.result.skipped += 1
            return
        self.context.deleted("account", [change.id])
        flag = {IS_DELETED: True, DELETED_AT: self.context.now}
        self.table.update_entity(
            {"PartitionKey": bucket(change.id), "RowKey": change.id, **flag},
            mode=UpdateMode.MERGE,
        )
        self.context.result.accounts_applied += 1
        self.context.result.removed += 1
