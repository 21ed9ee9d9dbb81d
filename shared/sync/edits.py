"""Local account edits through a contact: Marketo's "update an account field on a person".

The edit changes the mirrored account, so every contact of the account sees it; it never
reaches Dynamics. The fields are marked locally modified until the next Dynamics update of the
account overwrites them. Activities follow the same threshold rule as sync changes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceModifiedError

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
from shared.sync.apply.activities import FieldChange, FieldsChanged, log_change_activities
from shared.sync.fields import AccountCatalogue, field_problem
from shared.times import utcnow

EDIT_SOURCE = "acctsync API"
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
    edit_key = "e" + uuid.uuid4().hex
    for _ in range(MAX_ATTEMPTS):
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
        base_version = account.get("version")
        entity: dict[str, Any] = dict(account)
        changes: list[FieldChange] = []
        for column, value in stored.items():
            before, after = to_json(read_column(account, column)), to_json(value)
            if before == after:
                continue
            changes.append(FieldChange(column, before, after))
            set_column(entity, column, value)
        if not changes:
            return EditResult(account_id, [], 0, 0)
        marks = json.loads(account.get("locally_modified") or "[]")
        entity["locally_modified"] = json.dumps(sorted({*marks, *(c.field for c in changes)}))
        try:
            check_entity(entity)
        except UnstorableValue as error:
            raise EditError(422, "value_too_large", str(error)) from None
        try:
            replace(services.accounts.table, entity, etag=str(account.metadata["etag"]))
        except ResourceModifiedError:
            latest = services.accounts.get(account_id)
            if latest is not None and latest.get("version") != base_version:
                # Dynamics changed the account meanwhile: its newer values win.
                raise EditError(
                    409,
                    "account_changed_in_dynamics",
                    "the account changed in Dynamics while it was edited; read it and retry",
                ) from None
            continue  # another local edit: re-read and apply on top of it
        event = FieldsChanged(
            account_id=account_id,
            changes=changes,
            change_key=edit_key,
            at=utcnow(),
            reason=f"Local edit through contact {contact_id}",
            source=EDIT_SOURCE,
        )
        logged, suppressed = log_change_activities(services, event)
        return EditResult(account_id, [c.field for c in changes], logged, suppressed)
    raise EditError(409, "edit_conflict", "the account kept changing; retry the edit")


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
