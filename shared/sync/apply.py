"""The apply step: one batch of account and contact changes into the mirror.

Idempotent under redelivery: a change whose version is not newer than the mirrored one is
skipped (nothing written, nothing logged), and activity keys are derived from the change, so a
batch applied twice cannot log twice. Account rows are replaced only under an ETag condition,
so a local edit that races an apply is never silently lost.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from shared import telemetry
from shared.dataverse.columns import CONTACT_COLUMNS
from shared.mapping import (
    ColumnType,
    UnstorableValue,
    check_entity,
    property_name,
    to_json,
    to_stored,
)
from shared.mirror.records import PARALLEL_READS, Activity, bucket, replace
from shared.mirror.writes import MAX_TRANSACTION_ENTITIES, create_all, run_parallel
from shared.services import Services
from shared.state.tables import BatchResult, utcnow
from shared.sync.batches import AccountChange, Batch, ContactChange
from shared.threshold import contacts_to_count, logs_activities

logger = logging.getLogger(__name__)
Change = TypeVar("Change", AccountChange, ContactChange)

SYNC_REASON = "Account field changed in Dynamics"
SYNC_SOURCE = "Dynamics sync"
# A local edit that lands between the apply step's read and its conditional write makes the
# write fail; the step re-reads and tries again. Edits made back to back could win every
# immediate retry (the step logs activities between read and write), so the retries back off
# with jitter and give up only after many: the Dynamics change must win over the edits.
MAX_CONFLICT_RETRIES = 20
CONFLICT_BACKOFF_CAP_S = 0.5
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount
_BOOKKEEPING = (
    "version",
    "modified_on",
    "synced_at",
    "is_deleted",
    "deleted_at",
    "locally_modified",
)


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class FieldsChanged:
    """Fields of one account changed once (a Dynamics version, or a local edit)."""

    account_id: str
    changes: list[FieldChange]
    change_key: str  # the same change always has the same key: logging it twice is harmless
    at: datetime
    reason: str
    source: str


def log_change_activities(services: Services, event: FieldsChanged) -> tuple[int, int]:
    """Log one Change Data Value per contact per changed field, under the threshold rule.

    Returns (logged, suppressed). The rule reads at most limit + 1 members of the account.
    """
    activities, suppressed = change_activities(services, event)
    if not activities:
        return 0, suppressed
    return services.activities.write(activities), suppressed


def change_activities(services: Services, event: FieldsChanged) -> tuple[list[Activity], int]:
    """The activities a change logs under the threshold rule, and how many it suppresses."""
    changes = event.changes
    if not changes:
        return [], 0
    limit = services.settings.activity_contact_limit
    members = services.members.first(event.account_id, contacts_to_count(limit))
    if not logs_activities(len(members), limit):
        return [], len(members) * len(changes)
    activities = [
        Activity(
            contact,
            event.account_id,
            c.field,
            c.old,
            c.new,
            event.reason,
            event.source,
            event.at,
            event.change_key,
        )
        for contact in members
        for c in changes
    ]
    return activities, 0


def apply_batch(services: Services, body: str | bytes) -> BatchResult:
    """Apply one queue message; raises BadBatch for a message that is not a batch."""
    batch = Batch.decode(body)
    ids = {"cycle_id": batch.cycle_id, "batch_id": batch.batch_id}
    with telemetry.span("acctsync.apply_batch", traceparent=batch.traceparent, attributes=ids):
        result = _BatchApplier(services, batch).run()
    services.results.record(batch.cycle_id, batch.batch_id, result)
    telemetry.count("acctsync.accounts_applied", result.accounts_applied)
    telemetry.count("acctsync.contacts_applied", result.contacts_applied)
    telemetry.count("acctsync.activities_logged", result.activities_logged)
    telemetry.count("acctsync.activities_suppressed", result.activities_suppressed)
    telemetry.count("acctsync.sync_errors", result.errors)
    logger.info("batch applied", extra={**ids, **result.__dict__})
    return result


def apply_message(
    services: Services, body: str | bytes, *, dequeue_count: int | None
) -> BatchResult:
    """Apply a queue message; on its last allowed attempt, a failure counts as poison."""
    try:
        return apply_batch(services, body)
    except Exception:
        if dequeue_count is not None and dequeue_count >= MAX_DEQUEUE_COUNT:
            telemetry.count("acctsync.poison_messages", 1)
            logger.exception("batch failed for good; it moves to the poison queue")
        raise


@dataclass
class _AccountPlan:
    change: AccountChange
    entity: dict[str, Any]
    etag: str | None
    diff: list[FieldChange] = field(default_factory=list)


class _BatchApplier:
    def __init__(self, services: Services, batch: Batch):
        self.services = services
        # A record can come twice in one batch (a row that changed while a full load paged
        # past it); one transaction cannot write a row twice, so its last occurrence, the
        # newest, stands for it.
        self.batch = dataclasses.replace(
            batch,
            accounts=_last_of_each(batch.accounts),
            contacts=_last_of_each(batch.contacts),
            members=list(dict.fromkeys(batch.members)),
        )
        self.result = BatchResult()
        self.now = utcnow()

    def run(self) -> BatchResult:
        if self.batch.accounts:
            self._apply_accounts()
        if self.batch.contacts:
            self._apply_contacts()
        if self.batch.members:
            self.services.members.add_all(self.batch.members)
        return self.result

    @property
    def _first_load(self) -> bool:
        """A first load finds its rows missing: it writes them without reading first, and
        reads only the rows of a request that met one already there (a redelivery)."""
        return self.batch.mode == "initial"

    # -- accounts ----------------------------------------------------------------------------

    def _apply_accounts(self) -> None:
        live = [a for a in self.batch.accounts if not a.deleted]
        if self._first_load and len(live) == len(self.batch.accounts):
            existing: dict[str, TableEntity] = {}  # rows met on the way are re-read alone
        else:
            existing = self.services.accounts.get_many(a.id for a in self.batch.accounts)
        plans = [p for a in live if (p := self._plan_account(a, existing.get(a.id)))]
        # The activities of every account of the batch go out together, before the account
        # rows as before: grouped by contact partition, they fill transactions that one
        # account's few contacts could not.
        # Each account's threshold rule is one query of its own: they run side by side.
        activities: list[Activity] = []
        for found, suppressed in run_parallel(self._activities, plans, width=PARALLEL_READS):
            activities += found
            self.result.activities_suppressed += suppressed
        if activities:
            self.result.activities_logged += self.services.activities.write(activities)
        for change in self._write_account_groups(plans):
            self._apply_account_alone(change)
        for change in self.batch.accounts:
            if change.deleted:
                self._delete_account(change, existing.get(change.id))

    def _plan_account(self, change: AccountChange, old: TableEntity | None) -> _AccountPlan | None:
        assert change.version is not None
        if old is not None and _version(old) >= change.version:
            return self._plan_backfill(change, old)
        columns = self.batch.columns
        entity: dict[str, Any] = {}
        if old is not None:
            # Columns this batch does not carry (deselected, or no longer readable) keep
            # their mirrored values; the batch's own columns are replaced whole.
            carried = {property_name(c) for c in columns}
            entity.update(
                (k, v) for k, v in old.items() if k not in carried and k not in _BOOKKEEPING
            )
        entity.update(PartitionKey=bucket(change.id), RowKey=change.id)
        try:
            for column, kind in columns.items():
                stored = to_stored(column, kind, change.values.get(column))
                if stored is not None:
                    entity[property_name(column)] = stored
            entity.update(
                version=EntityProperty(change.version, EdmType.INT64),
                synced_at=self.now,
                is_deleted=False,
                locally_modified="[]",
            )
            if change.modified_on:
                entity["modified_on"] = change.modified_on
            check_entity(entity)
        except UnstorableValue as error:
            self._error("account", change.id, "update", str(error))
            return None
        plan = _AccountPlan(change, entity, old.metadata["etag"] if old is not None else None)
        if old is not None and self.batch.mode != "initial":
            for column in columns:
                if column in self.batch.backfill:
                    continue  # a newly selected column loads silently
                before = to_json(old.get(property_name(column)))
                after = to_json(entity.get(property_name(column)))
                if before != after:
                    plan.diff.append(FieldChange(column, before, after))
        return plan

    def _plan_backfill(self, change: AccountChange, old: TableEntity) -> _AccountPlan | None:
        """An account Dynamics has not changed: only newly selected columns may need values."""
        entity: dict[str, Any] = {**old, "PartitionKey": old["PartitionKey"], "RowKey": change.id}
        changed = False
        try:
            for column in self.batch.backfill:
                kind = self.batch.columns.get(column)
                if kind is None:
                    continue
                stored = to_stored(column, kind, change.values.get(column))
                name = property_name(column)
                if to_json(old.get(name)) != to_json(stored):
                    changed = True
                    if stored is None:
                        entity.pop(name, None)
                    else:
                        entity[name] = stored
            check_entity(entity)
        except UnstorableValue as error:
            self._error("account", change.id, "backfill", str(error))
            return None
        if not changed:
            self.result.skipped += 1
            return None
        return _AccountPlan(change, entity, old.metadata["etag"])

    def _log(self, plan: _AccountPlan) -> None:
        activities, suppressed = self._activities(plan)
        self.result.activities_suppressed += suppressed
        if activities:
            self.result.activities_logged += self.services.activities.write(activities)

    def _activities(self, plan: _AccountPlan) -> tuple[list[Activity], int]:
        """The plan's activities to write, and how many the threshold rule suppresses."""
        change = plan.change
        event = FieldsChanged(
            account_id=change.id,
            changes=plan.diff,
            change_key=f"v{change.version:020d}",
            at=_change_time(change.modified_on) or self.now,
            reason=SYNC_REASON,
            source=SYNC_SOURCE,
        )
        return change_activities(self.services, event)

    def _write_account_groups(self, plans: list[_AccountPlan]) -> list[AccountChange]:
        """Write plans in entity-group transactions; return the changes that met a conflict."""
        groups: dict[str, list[_AccountPlan]] = defaultdict(list)
        for plan in plans:
            groups[plan.entity["PartitionKey"]].append(plan)
        conflicted: list[AccountChange] = []
        table = self.services.accounts.table
        for group in groups.values():
            for start in range(0, len(group), MAX_TRANSACTION_ENTITIES):
                chunk = group[start : start + MAX_TRANSACTION_ENTITIES]
                try:
                    if len(chunk) == 1:
                        # The same conditional write without the transaction envelope, which
                        # costs three times the CPU of the write itself.
                        _write_account(table, chunk[0])
                    else:
                        table.submit_transaction([_account_operation(p) for p in chunk])
                except (TableTransactionError, ResourceModifiedError, ResourceExistsError):
                    conflicted.extend(p.change for p in chunk)
                    continue
                self.result.accounts_applied += len(chunk)
                for plan in chunk:
                    self._lag(plan.change.modified_on)
        return conflicted

    def _apply_account_alone(self, change: AccountChange) -> None:
        """Re-read and re-apply one account until its ETag condition holds."""
        table = self.services.accounts.table
        for attempt in range(MAX_CONFLICT_RETRIES):
            if attempt:
                time.sleep(random.uniform(0, min(CONFLICT_BACKOFF_CAP_S, 0.01 * 2**attempt)))
            plan = self._plan_account(change, self.services.accounts.get(change.id))
            if plan is None:
                return
            self._log(plan)
            try:
                _write_account(table, plan)
            except (ResourceModifiedError, ResourceExistsError):
                continue
            self.result.accounts_applied += 1
            self._lag(change.modified_on)
            return
        raise RuntimeError(f"account {change.id} kept changing under the apply step; retry later")

    def _delete_account(self, change: AccountChange, old: TableEntity | None) -> None:
        if old is None or old.get("is_deleted"):
            self.result.skipped += 1
            return
        self.services.accounts.table.update_entity(
            {
                "PartitionKey": bucket(change.id),
                "RowKey": change.id,
                "is_deleted": True,
                "deleted_at": self.now,
            },
            mode=UpdateMode.MERGE,
        )
        self.result.accounts_applied += 1

    # -- contacts ----------------------------------------------------------------------------

    def _apply_contacts(self) -> None:
        contacts = self.batch.contacts
        if self._first_load and not any(c.deleted for c in contacts):
            contacts = self._create_contacts(contacts)
        if contacts:
            self._update_contacts(contacts)

    def _create_contacts(self, contacts: list[ContactChange]) -> list[ContactChange]:
        """Write contacts as new rows; returns those whose rows turned out to exist."""
        rows = {c.id: row for c in contacts if (row := self._contact_entity(c)) is not None}
        # Memberships first, as in _update_contacts: a redelivery writes both again. Those of
        # contacts whose parent is known to be an account may come in batches of their own.
        apart = {c.id for c in contacts if self.batch.members_apart and c.parent_type == "account"}
        self.services.members.add_all(
            (str(row["accountid"]), contact_id)
            for contact_id, row in rows.items()
            if row["accountid"] and contact_id not in apart
        )
        table = self.services.contacts.table
        existing = {str(row["RowKey"]) for row in create_all(table, rows.values())}
        created = [c for c in contacts if c.id in rows and c.id not in existing]
        self.result.contacts_applied += len(created)
        for change in created:
            self._lag(change.modified_on)
        return [c for c in contacts if c.id in existing]

    def _update_contacts(self, contacts: list[ContactChange]) -> None:
        existing = self.services.contacts.get_many(c.id for c in contacts)
        rows: list[dict[str, Any]] = []
        joins: list[tuple[str, str]] = []
        leaves: list[tuple[str, str]] = []
        modified: list[str | None] = []
        for change in contacts:
            old = existing.get(change.id)
            old_account = str(old.get("accountid", "")) if old and not old.get("is_deleted") else ""
            if change.deleted:
                if old is None or old.get("is_deleted"):
                    self.result.skipped += 1
                    continue
                rows.append({**old, "is_deleted": True, "deleted_at": self.now})
                if old_account:
                    leaves.append((old_account, change.id))
                continue
            assert change.version is not None
            if old is not None and _version(old) >= change.version:
                self.result.skipped += 1
                continue
            entity = self._contact_entity(change)
            if entity is None:
                continue
            new_account = entity["accountid"]
            if new_account != old_account:
                if old_account:
                    leaves.append((old_account, change.id))
                if new_account:
                    joins.append((new_account, change.id))
            rows.append(entity)
            modified.append(change.modified_on)
        # Membership first: a crash before the contact rows are written is redone on
        # redelivery (the contact still has its old version), and both writes are idempotent.
        self.services.members.add_all(joins)
        for account_id, contact_id in leaves:
            self.services.members.remove(account_id, contact_id)
        self.services.contacts.upsert_all(rows)
        self.result.contacts_applied += len(rows)
        for modified_on in modified:
            self._lag(modified_on)

    def _contact_entity(self, change: ContactChange) -> dict[str, Any] | None:
        parent = (change.parent_id or "").lower()
        account = parent if self._parent_is_account(parent, change.parent_type) else ""
        try:
            return contact_row(change, account_id=account, synced_at=self.now)
        except UnstorableValue as error:
            self._error("contact", change.id, "update", str(error))
            return None

    def _parent_is_account(self, parent: str, parent_type: str | None) -> bool:
        if not parent:
            return False
        if parent_type is not None:
            return parent_type == "account"
        # Without the lookuplogicalname annotation, the parent is an account only if we know it.
        return self.services.accounts.get(parent) is not None

    def _lag(self, modified_on: str | None) -> None:
        changed_at = _change_time(modified_on)
        if changed_at is not None:
            lag = (utcnow() - changed_at).total_seconds()
            telemetry.observe("acctsync.change_lag_s", max(lag, 0.0), mode=self.batch.mode)

    def _error(self, entity: str, record_id: str, operation: str, message: str) -> None:
        self.result.errors += 1
        self.services.errors.record(
            entity=entity,
            record_id=record_id,
            operation=operation,
            message=message,
            cycle_id=self.batch.cycle_id,
        )


def contact_row(change: ContactChange, *, account_id: str, synced_at: datetime) -> dict[str, Any]:
    """A contact's mirror row; UnstorableValue for a value Table Storage cannot hold."""
    assert change.version is not None
    entity: dict[str, Any] = {
        "PartitionKey": bucket(change.id),
        "RowKey": change.id,
        "version": EntityProperty(change.version, EdmType.INT64),
        "synced_at": synced_at,
        "is_deleted": False,
        "accountid": account_id,
        "parent_id": (change.parent_id or "").lower(),
        "parent_type": change.parent_type or "",
    }
    for column, kind in CONTACT_COLUMNS.items():
        stored = to_stored(column, kind, change.values.get(column))
        if stored is not None:
            entity[property_name(column)] = stored
    check_entity(entity)
    return entity


def _write_account(table: TableClient, plan: _AccountPlan) -> None:
    """Create a new account row, or replace it under the ETag it was read with."""
    if plan.etag is None:
        table.create_entity(plan.entity)
    else:
        replace(table, plan.entity, etag=plan.etag)


def _account_operation(plan: _AccountPlan) -> tuple[Any, ...]:
    if plan.etag is None:
        return (TransactionOperation.CREATE, plan.entity)
    return (
        TransactionOperation.UPDATE,
        plan.entity,
        {
            "mode": UpdateMode.REPLACE,
            "etag": plan.etag,
            "match_condition": MatchConditions.IfNotModified,
        },
    )


def _last_of_each(changes: list[Change]) -> list[Change]:
    return list({change.id: change for change in changes}.values())


def _version(entity: TableEntity) -> int:
    value = entity.get("version", 0)
    return int(value.value if isinstance(value, EntityProperty) else value)


def _change_time(modified_on: str | None) -> datetime | None:
    if not modified_on:
        return None
    stored = to_stored("modifiedon", ColumnType.DATETIME, modified_on)
    return stored if isinstance(stored, datetime) else None
