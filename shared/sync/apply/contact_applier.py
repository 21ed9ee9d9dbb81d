"""The applier of a batch's contact changes, and the account memberships they imply.

A contact belongs to the account its parent customer names (no account when the parent is
another contact). Memberships are written before the contact rows: a crash in between is
redone on redelivery (the contact still has its old version), and both writes are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure.data.tables import TableEntity

from shared.mapping import UnstorableValue
from shared.mirror.feed_index import Stream
from shared.mirror.row import DELETED_AT, IS_DELETED, is_deleted
from shared.mirror.search import SearchKind
from shared.mirror.writes import create_all, merge_all
from shared.sync.apply.context import ApplyContext
from shared.sync.apply.search_entries import index_rows, index_unchanged
from shared.sync.batches import ContactChange
from shared.sync.change_rows import contact_row


@dataclass
class _ContactWrites:
    """What a batch of contact changes writes, gathered before anything is written."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # replaced whole
    stamps: list[dict[str, Any]] = field(default_factory=list)  # a re-load's generation
    still_deleted: list[dict[str, Any]] = field(default_factory=list)  # values, still flagged
    joins: list[tuple[str, str]] = field(default_factory=list)  # (account, contact)
    leaves: list[tuple[str, str]] = field(default_factory=list)
    modified: list[str | None] = field(default_factory=list)  # modifiedon of rows applied


class ContactApplier:
    def __init__(self, context: ApplyContext):
        self.context = context
        self.services = context.services

    def apply(self, changes: list[ContactChange]) -> None:
        if self.context.first_load and not any(c.deleted for c in changes):
            changes = self._create(changes)
        if changes:
            self._update(changes)

    def _create(self, changes: list[ContactChange]) -> list[ContactChange]:
        """Write contacts as new rows; returns those whose rows turned out to exist."""
        rows = {c.id: row for c in changes if (row := self._row(c, None)) is not None}
        # Those of contacts whose parent is known to be an account may come in batches of
        # their own (grouped by membership partition).
        batch = self.context.batch
        apart = {c.id for c in changes if batch.members_apart and c.parent_type == "account"}
        self.services.members.add_all(
            (str(row["accountid"]), contact_id)
            for contact_id, row in rows.items()
            if row["accountid"] and contact_id not in apart
        )
        self.context.synced(Stream.SYNCED_CONTACTS, rows.values())
        index_rows(self.context, SearchKind.CONTACT, rows.values(), {})
        existing = {
            str(r["RowKey"]) for r in create_all(self.services.contacts.table, rows.values())
        }
        created = [c for c in changes if c.id in rows and c.id not in existing]
        self.context.result.contacts_applied += len(created)
        self.context.result.added += len(created)
        for change in created:
            self.context.lag(change.modified_on)
        return [c for c in changes if c.id in existing]

    def _update(self, changes: list[ContactChange]) -> None:
        existing = self.services.contacts.get_many(c.id for c in changes)
        writes = _ContactWrites()
        for change in changes:
            old = existing.get(change.id)
            if change.deleted:
                self._plan_deletion(writes, change, old)
            else:
                self._plan_change(writes, change, old)
        self._write(writes, existing)

    def _plan_deletion(
        self, writes: _ContactWrites, change: ContactChange, old: TableEntity | None
    ) -> None:
        if old is None or is_deleted(old):
            self.context.result.skipped += 1
            return
        writes.rows.append({**old, IS_DELETED: True, DELETED_AT: self.context.now})
        self.context.result.removed += 1
        if old_account := _account_of(old):
            writes.leaves.append((old_account, change.id))

    def _plan_change(
        self, writes: _ContactWrites, change: ContactChange, old: TableEntity | None
    ) -> None:
        assert change.version is not None
        result = self.context.result
        # A contact flagged deleted that Dynamics has (a wrong flag) is written again.
        unchanged = self.context.skips(old, change.id, change.version)
        if old is not None and unchanged and not self.context.revives(old):
            result.skipped += 1
            writes.stamps.extend(self._stamp(old))
            return
        entity = self._row(change, old)
        if entity is None:
            # Its last good values stay; a re-load saw it all the same.
            writes.stamps.extend(self._stamp(old))
            return
        if old is not None and is_deleted(old) and not self.context.revives(old):
            # Read before Dynamics deleted it: its values, but not the record back.
            writes.still_deleted.append({**entity, IS_DELETED: True, DELETED_AT: old[DELETED_AT]})
            return
        old_account, new_account = _account_of(old), entity["accountid"]
        if new_account != old_account:
            if old_account:
                writes.leaves.append((old_account, change.id))
            if new_account:
                writes.joins.append((new_account, change.id))
        writes.rows.append(entity)
        writes.modified.append(change.modified_on)
        if old is None:
            result.added += 1

    def _write(self, writes: _ContactWrites, existing: dict[str, TableEntity]) -> None:
        """Memberships first, then the change feed and search index, then the rows."""
        self.services.members.add_all(writes.joins)
        for account_id, contact_id in writes.leaves:
            self.services.members.remove(account_id, contact_id)
        live = [r for r in writes.rows if not r[IS_DELETED]]
        self.context.deleted("contact", (str(r["RowKey"]) for r in writes.rows if r[IS_DELETED]))
        self.context.synced(Stream.SYNCED_CONTACTS, live)
        index_rows(self.context, SearchKind.CONTACT, live, existing)
        stamped = (existing[str(s["RowKey"])] for s in writes.stamps)
        index_unchanged(self.context, SearchKind.CONTACT, stamped)
        self.services.contacts.upsert_all(writes.rows + writes.still_deleted)
        merge_all(self.services.contacts.table, writes.stamps)
        self.context.result.contacts_applied += len(writes.rows)
        self.context.result.skipped += len(writes.still_deleted)
        for modified_on in writes.modified:
            self.context.lag(modified_on)

    def _stamp(self, old: TableEntity | None) -> list[dict[str, Any]]:
        """A re-load saw this row, which is kept as it is: its generation (none otherwise)."""
        stamp = self.context.reload_stamp(old)
        return [] if stamp is None else [stamp]

    def _row(self, change: ContactChange, old: TableEntity | None) -> dict[str, Any] | None:
        parent = (change.parent_id or "").lower()
        account = parent if self._parent_is_account(parent, change.parent_type) else ""
        try:
            return contact_row(
                change,
                account_id=account,
                synced=self.context.sync_mark(Stream.SYNCED_CONTACTS),
                generation=self.context.generation(old),
                old=old,
            )
        except UnstorableValue as error:
            self.context.error("contact", change.id, "update", str(error))
            return None

    def _parent_is_account(self, parent: str, parent_type: str | None) -> bool:
        if not parent:
            return False
        if parent_type is not None:
            return parent_type == "account"
        # Without the lookuplogicalname annotation, the parent is an account only if we know it.
        return self.services.accounts.get(parent) is not None


def _account_of(old: TableEntity | None) -> str:
    """The account a mirrored contact row belongs to now ("" for none, or deleted)."""
    return str(old.get("accountid", "")) if old and not is_deleted(old) else ""
