"""Local account edits through a contact: Marketo's "update an account field on a person".

The edit changes the mirrored account, so every contact of the account sees it; it never
reaches Dynamics. The fields are marked locally modified until the next Dynamics update of the
account overwrites them. Activities follow the same threshold rule as sync changes, and are as
durable as the edit itself (shared.sync.pending_edits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableEntity

from shared.mapping import (
    CHUNK_UNITS,
    UnstorableValue,
    check_entity,
    read_column,
    set_column,
    to_json,
    to_stored,
    utf16_units,
)
from shared.mirror.records import replace
from shared.services import Services
from shared.state.fields import FieldSelection
from shared.sync.apply.activities import FieldChange
from shared.sync.fields import AccountCatalogue, field_problem
from shared.sync.pending_edits import PendingEdit, log_owed, settle, without_record

# Text an edit may set: what one Table Storage property holds (Dynamics' own text columns
# are far shorter; only a synced memo may be longer, and it is never edited that long).
MAX_EDIT_UNITS = CHUNK_UNITS
MAX_ATTEMPTS = 5


class EditError(Exception):
    """An edit that was refused; nothing changed. `code` is the API error word."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class EditResult:
    account_id: str
    changed: list[str]
    activities_logged: int
    activities_suppressed: int


def edit_account_through_contact(
    services: Services, contact_id: str, values: dict[str, Any]
) -> EditResult:
    """Apply `values` (logical name → Web API value) to the account of a mirrored contact."""
    contact = services.contacts.get(contact_id)
    if contact is None:
        raise EditError(404, "contact_not_found", f"no mirrored contact {contact_id}")
    account_id = str(contact.get("accountid") or "")
    if not account_id or contact.get("is_deleted"):
        raise EditError(
            409, "contact_has_no_account", f"contact {contact_id} belongs to no account"
        )
    stored = _validated(values, services.fields.get(), AccountCatalogue(services))
    for _ in range(MAX_ATTEMPTS):
        account = _editable(services, account_id)
        etag = str(account.metadata["etag"])
        # An earlier edit that failed before its activities were all logged: they go first.
        owed = _log_owed(services, account)
        changes = _changes(account, stored)
        if not changes:
            if owed is None:
                return EditResult(account_id, [], 0, 0)
            settle(services, account, etag=etag)
            # A retry of the edit that failed answers what that edit did.
            retried = owed.edit.sets(contact_id, {c: to_json(v) for c, v in stored.items()})
            return owed.result if retried else EditResult(account_id, [], 0, 0)
        pending = PendingEdit.new(
            account_id=account_id, etag=etag, contact_id=contact_id, changes=changes
        )
        entity = {**_edited(account, stored, changes), **pending.properties()}
        try:
            check_entity(entity)
        except UnstorableValue as error:
            raise EditError(422, "value_too_large", str(error)) from None
        try:
            # The edit and the activities it owes, in one write: see shared.sync.pending_edits.
            written = replace(services.accounts.table, entity, etag=etag)
        except ResourceModifiedError:
            _raise_if_changed_in_dynamics(services, account)
            continue  # another local edit: re-read and apply on top of it
        done = _logged(services, account_id, pending)
        settle(services, entity, etag=written)
        return done.result
    raise EditError(409, "edit_conflict", "the account kept changing; retry the edit")


@dataclass(frozen=True)
class _Logged:
    edit: PendingEdit
    result: EditResult


def _logged(services: Services, account_id: str, edit: PendingEdit) -> _Logged:
    logged, suppressed = log_owed(services, account_id, edit)
    return _Logged(
        edit, EditResult(account_id, [c.field for c in edit.changes], logged, suppressed)
    )


def _log_owed(services: Services, account: TableEntity) -> _Logged | None:
    """The activities an earlier edit recorded on the row and may not have logged, logged."""
    owed = PendingEdit.of(account)
    return None if owed is None else _logged(services, str(account["RowKey"]), owed)


def _editable(services: Services, account_id: str) -> TableEntity:
    account = services.accounts.get(account_id)
    if account is None or account.get("is_deleted"):
        raise EditError(409, "account_not_mirrored", f"account {account_id} is not mirrored")
    if account.get("sync_filtered"):
        raise EditError(
            409,
            "account_sync_filtered",
            f"account {account_id} no longer syncs: the sync filter column is No in "
            "Dynamics; set it to Yes there to sync the account again",
        )
    return account


def _changes(account: TableEntity, stored: dict[str, Any]) -> list[FieldChange]:
    """The fields whose values the edit changes, with their old and new values."""
    changes = []
    for column, value in stored.items():
        before, after = to_json(read_column(account, column)), to_json(value)
        if before != after:
            changes.append(FieldChange(column, before, after))
    return changes


def _edited(
    account: TableEntity, stored: dict[str, Any], changes: list[FieldChange]
) -> dict[str, Any]:
    """The account row with the edit's values, its fields marked locally modified (and
    without an earlier edit's record: its activities were logged when the row was read)."""
    entity = without_record(account)
    for change in changes:
        set_column(entity, change.field, stored[change.field])
    marks = json.loads(account.get("locally_modified") or "[]")
    entity["locally_modified"] = json.dumps(sorted({*marks, *(c.field for c in changes)}))
    return entity


def _raise_if_changed_in_dynamics(services: Services, account: TableEntity) -> None:
    latest = services.accounts.get(str(account["RowKey"]))
    if latest is not None and latest.get("version") != account.get("version"):
        # Dynamics changed the account meanwhile: its newer values win.
        raise EditError(
            409,
            "account_changed_in_dynamics",
            "the account changed in Dynamics while it was edited; read it and retry",
        )


def _validated(
    values: dict[str, Any], selection: FieldSelection | None, catalogue: AccountCatalogue
) -> dict[str, Any]:
    """The values as stored, or EditError naming every value Dynamics itself could not hold."""
    if not values:
        raise EditError(422, "no_fields", 'give at least one field: {"fields": {"name": "..."}}')
    problems = []
    stored: dict[str, Any] = {}
    for column, value in values.items():
        problem = field_problem(selection, column, catalogue=catalogue)
        if problem is None:
            assert selection is not None
            try:
                stored[column] = to_stored(column, selection.columns[column], value)
            except UnstorableValue as error:
                problem = str(error)
        if problem is None and isinstance(value, str) and utf16_units(value) > MAX_EDIT_UNITS:
            problem = f"{column!r} is longer than the {MAX_EDIT_UNITS:,} characters an edit may set"
        if problem is None and selection is not None and column in selection.limits:
            problem = selection.limits[column].problem(column, value)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise EditError(422, "invalid_fields", "; ".join(problems))
    return stored
