"""Local account edits through a contact: Marketo's "update an account field on a person".

The edit changes the mirrored account, so every contact of the account sees it; it never
reaches Dynamics. The fields are marked locally modified until the next Dynamics update of the
account overwrites them. Activities follow the same threshold rule as sync changes, and are as
durable as the edit itself (shared.sync.pending_edits).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from azure.data.tables import TableEntity

from shared.errors import AcctsyncError
from shared.mapping import (
    CHUNK_UNITS,
    UnstorableValue,
    check_entity,
    set_column,
    to_json,
    to_stored,
    utf16_units,
)
from shared.mirror.conflicts import ConflictRetries, write_on_top
from shared.mirror.records import replace
from shared.mirror.row import (
    VERSION,
    FieldChange,
    column_changes,
    is_deleted,
    is_sync_filtered,
    local_edits,
    put_local_edits,
)
from shared.services import Services
from shared.state.field_selections import FieldSelection
from shared.sync.pending_edits import PendingEdit, log_owed, settle, without_record
from shared.sync.select_fields import AccountCatalogue, field_problem

# Text an edit may set: what one Table Storage property holds (Dynamics' own text columns
# are far shorter; only a synced memo may be longer, and it is never edited that long).
MAX_EDIT_UNITS = CHUNK_UNITS
# Another local edit of the account between the read and the write: read again, edit on top.
EDIT_RETRIES = ConflictRetries(5, "the account kept changing; retry the edit")


class EditRefusal(StrEnum):
    """Why an edit was refused; the value is the API's error code word."""

    CONTACT_NOT_FOUND = "contact_not_found"
    CONTACT_HAS_NO_ACCOUNT = "contact_has_no_account"
    ACCOUNT_NOT_MIRRORED = "account_not_mirrored"
    ACCOUNT_SYNC_FILTERED = "account_sync_filtered"
    ACCOUNT_CHANGED_IN_DYNAMICS = "account_changed_in_dynamics"
    NO_FIELDS = "no_fields"
    INVALID_FIELDS = "invalid_fields"
    VALUE_TOO_LARGE = "value_too_large"


class EditError(AcctsyncError):
    """An edit that was refused; nothing changed. The message says what to do instead."""

    def __init__(self, reason: EditRefusal, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EditResult:
    account_id: str
    changed: list[str]
    activities_logged: int
    activities_suppressed: int


def edit_account_through_contact(
    services: Services, contact_id: str, values: dict[str, Any]
) -> EditResult:
    """Apply `values` (logical name → Web API value) to the account of a mirrored contact.
    EditError when refused, WriteConflict when other edits kept winning the race."""
    contact = services.contacts.get(contact_id)
    if contact is None:
        raise EditError(EditRefusal.CONTACT_NOT_FOUND, f"no mirrored contact {contact_id}")
    account_id = str(contact.get("accountid") or "")
    if not account_id or is_deleted(contact):
        raise EditError(
            EditRefusal.CONTACT_HAS_NO_ACCOUNT, f"contact {contact_id} belongs to no account"
        )
    stored = _validated(values, services.fields.get(), AccountCatalogue(services))
    return write_on_top(
        _editable(services, account_id),
        lambda account: _edit(services, account, contact_id, stored),
        reread=lambda: _editable(services, account_id),
        retries=EDIT_RETRIES,
        on_conflict=lambda account: _raise_if_changed_in_dynamics(services, account),
    )


def _edit(
    services: Services, account: TableEntity, contact_id: str, stored: dict[str, Any]
) -> EditResult:
    """The edit written over `account` under its ETag (ResourceModifiedError if it changed),
    and its activities logged."""
    account_id = str(account["RowKey"])
    etag = str(account.metadata["etag"])
    # An earlier edit that failed before its activities were all logged: they go first.
    owed = _log_owed(services, account)
    changes = column_changes(account, stored)
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
        raise EditError(EditRefusal.VALUE_TOO_LARGE, str(error)) from None
    # The edit and the activities it owes, in one write: see shared.sync.pending_edits.
    written = replace(services.accounts.table, entity, etag=etag)
    done = _logged(services, account_id, pending)
    settle(services, entity, etag=written)
    return done.result


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
    if account is None or is_deleted(account):
        raise EditError(EditRefusal.ACCOUNT_NOT_MIRRORED, f"account {account_id} is not mirrored")
    if is_sync_filtered(account):
        raise EditError(
            EditRefusal.ACCOUNT_SYNC_FILTERED,
            f"account {account_id} no longer syncs: the sync filter column is No in "
            "Dynamics; set it to Yes there to sync the account again",
        )
    return account


def _edited(
    account: TableEntity, stored: dict[str, Any], changes: list[FieldChange]
) -> dict[str, Any]:
    """The account row with the edit's values, its fields marked locally modified (and
    without an earlier edit's record: its activities were logged when the row was read)."""
    entity = without_record(account)
    for change in changes:
        set_column(entity, change.field, stored[change.field])
    put_local_edits(entity, sorted({*local_edits(account), *(c.field for c in changes)}))
    return entity


def _raise_if_changed_in_dynamics(services: Services, account: TableEntity) -> None:
    latest = services.accounts.get(str(account["RowKey"]))
    if latest is not None and latest.get(VERSION) != account.get(VERSION):
        # Dynamics changed the account meanwhile: its newer values win.
        raise EditError(
            EditRefusal.ACCOUNT_CHANGED_IN_DYNAMICS,
            "the account changed in Dynamics while it was edited; read it and retry",
        )


def _validated(
    values: dict[str, Any], selection: FieldSelection | None, catalogue: AccountCatalogue
) -> dict[str, Any]:
    """The values as stored, or EditError naming every value Dynamics itself could not hold."""
    if not values:
        raise EditError(
            EditRefusal.NO_FIELDS, 'give at least one field: {"fields": {"name": "..."}}'
        )
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
        raise EditError(EditRefusal.INVALID_FIELDS, "; ".join(problems))
    return stored
