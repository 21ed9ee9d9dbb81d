"""Mirrored contacts, the local edit of their account, and their activity log."""

from __future__ import annotations

from fastapi import APIRouter

from shared.mirror.conflicts import WriteConflict
from shared.mirror.records import fields_of, labels_shown
from shared.mirror.row import is_deleted, is_sync_filtered
from shared.sync.edits import EditError, EditRefusal, edit_account_through_contact
from shared.web.error_answers import ApiError
from shared.web.models import AccountEdit, Activity, Contact, EditResult
from shared.web.routes.accounts import account_view, selected_fields
from shared.web.routes.depends import ERRORS, GuidPath, ServicesDep, guid

router = APIRouter(prefix="/api/contacts", tags=["contacts"], responses=ERRORS)

# The status each refused edit answers with; its code word is the refusal's own.
EDIT_REFUSAL_STATUS: dict[EditRefusal, int] = {
    EditRefusal.CONTACT_NOT_FOUND: 404,
    EditRefusal.CONTACT_HAS_NO_ACCOUNT: 409,
    EditRefusal.ACCOUNT_NOT_MIRRORED: 409,
    EditRefusal.ACCOUNT_SYNC_FILTERED: 409,
    EditRefusal.ACCOUNT_CHANGED_IN_DYNAMICS: 409,
    EditRefusal.NO_FIELDS: 422,
    EditRefusal.INVALID_FIELDS: 422,
    EditRefusal.VALUE_TOO_LARGE: 422,
}


@router.get("/{contactid}", summary="A mirrored contact with its account's fields")
def get_contact(contactid: GuidPath, services: ServicesDep) -> Contact:
    contact_id = guid(contactid)
    row = services.contacts.get(contact_id)
    if row is None:
        raise ApiError(404, "contact_not_found", f"no mirrored contact {contact_id}")
    account_id = str(row.get("accountid") or "") or None
    account = services.accounts.get(account_id) if account_id else None
    fields = selected_fields(services, fields_of(account)) if account is not None else None
    return Contact(
        contactid=contact_id,
        accountid=account_id,
        fields=fields_of(row),
        formatted=labels_shown(row, fields_of(row)),
        account=fields,
        account_formatted=labels_shown(account, fields) if account is not None and fields else {},
        is_deleted=is_deleted(row),
        account_sync_filtered=account is not None and is_sync_filtered(account),
    )


@router.patch(
    "/{contactid}/account",
    summary="Edit the contact's account in the mirror (never sent to Dynamics)",
    description="Every contact of the account sees the new values, each change logs a Change "
    "Data Value activity under the threshold rule, and the next Dynamics update of the "
    "account overwrites them. Unknown, unselected or unreadable field, a value Dynamics "
    "could not hold: 422 and nothing changes.",
)
def patch_contact_account(
    contactid: GuidPath, edit: AccountEdit, services: ServicesDep
) -> EditResult:
    contact_id = guid(contactid)
    try:
        result = edit_account_through_contact(services, contact_id, edit.fields)
    except EditError as error:
        status = EDIT_REFUSAL_STATUS[error.reason]
        raise ApiError(status, error.reason.value, str(error)) from None
    except WriteConflict as error:  # other edits kept winning the race
        raise ApiError(409, "edit_conflict", str(error)) from None
    return EditResult(
        accountid=result.account_id,
        changed=result.changed,
        activities_logged=result.activities_logged,
        activities_suppressed=result.activities_suppressed,
        account=account_view(services, result.account_id),
    )


@router.get(
    "/{contactid}/activities",
    summary="The contact's Change Data Value activities, newest first",
    response_model_exclude_none=True,
)
def get_activities(contactid: GuidPath, services: ServicesDep) -> list[Activity]:
    contact_id = guid(contactid)
    if services.contacts.get(contact_id) is None:
        raise ApiError(404, "contact_not_found", f"no mirrored contact {contact_id}")
    return [Activity(**a) for a in services.activities.for_contact(contact_id)]
