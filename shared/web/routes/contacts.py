"""Mirrored contacts, the local edit of their account, and their activity log."""

from __future__ import annotations

from fastapi import APIRouter

from shared.mirror.records import fields_of, labels_shown
from shared.sync.edits import EditError, edit_account_through_contact
from shared.web.errors import ApiError
from shared.web.models import AccountEdit, Activity, Contact, EditResult
from shared.web.routes.accounts import account_view, selected_fields
from shared.web.routes.depends import ERRORS, GuidPath, ServicesDep, guid

router = APIRouter(prefix="/api/contacts", tags=["contacts"], responses=ERRORS)


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
        is_deleted=bool(row.get("is_deleted")),
        account_sync_filtered=account is not None and bool(account.get("sync_filtered")),
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
        raise ApiError(error.status, error.code, str(error)) from None
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
