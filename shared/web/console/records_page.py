"""Records: find an account by the start of its name, or through a contact's name or email
(or by an id), then the account as mirrored (its locally modified fields and those still
waiting for their backfill marked), its contacts a page at a time, and each contact's Change
Data Value activities, newest first."""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableEntity
from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.ids import InvalidId, parse_guid
from shared.mapping import read_column
from shared.mirror.records import fields_of
from shared.mirror.row import is_deleted
from shared.mirror.search import SearchKind, search_page
from shared.web.console.pages import SessionDep, render
from shared.web.routes.accounts import account_view
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
CONTACTS_PER_PAGE = 10
FOUND_PER_KIND = 25  # a name typed in full finds a few; a first letter shows where to go on
ACTIVITIES_PER_CONTACT = 50


@router.get("/records")
def records_page(
    request: Request, services: ServicesDep, session: SessionDep, id: str = "", page: int = 1
) -> Response:
    context: dict[str, Any] = {"id": id, "account": None, "problem": None, "contacts": []}
    text = id.strip()
    if text:
        try:
            record_id = parse_guid(text)
        except InvalidId:
            context.update(_found(services, text))
        else:
            context.update(_account(services, _account_of(services, record_id), max(page, 1)))
    return render(request, "records.html", context, session=session)


def _account_of(services: ServicesDep, record_id: str) -> str:
    """The account an id names: an account's own, or a contact's account."""
    if services.accounts.get(record_id) is None:
        contact = services.contacts.get(record_id)
        if contact is not None and contact.get("accountid"):
            return str(contact["accountid"])
    return record_id


def _found(services: ServicesDep, text: str) -> dict[str, Any]:
    """Accounts whose name, and contacts whose name or email, start with `text`."""
    accounts = search_page(
        services.search,
        SearchKind.ACCOUNT,
        services.accounts,
        text,
        None,
        FOUND_PER_KIND,
        include_deleted=True,
    )
    contacts = search_page(
        services.search,
        SearchKind.CONTACT,
        services.contacts,
        text,
        None,
        FOUND_PER_KIND,
        include_deleted=True,
    )
    return {
        "found": {
            "accounts": [_found_account(row) for row in accounts.rows],
            "contacts": [_found_contact(row) for row in contacts.rows],
            "more": accounts.position is not None or contacts.position is not None,
        }
    }


def _found_account(row: TableEntity) -> dict[str, Any]:
    return {
        "id": str(row["RowKey"]),
        "name": read_column(row, "name") or "",
        "is_deleted": is_deleted(row),
    }


def _found_contact(row: TableEntity) -> dict[str, Any]:
    return {
        "id": str(row["RowKey"]),
        "name": read_column(row, "fullname") or "",
        "email": read_column(row, "emailaddress1") or "",
        "accountid": str(row.get("accountid") or ""),
        "is_deleted": is_deleted(row),
    }


def _account(services: ServicesDep, account_id: str, page: int) -> dict[str, Any]:
    view = account_view(services, account_id)
    if view is None:
        return {"problem": f"No mirrored account {account_id}."}
    # Paging by count over the account's key range: an account's contacts are one range.
    upto = page * CONTACTS_PER_PAGE
    ids = services.members.first(account_id, upto + 1)
    shown = ids[upto - CONTACTS_PER_PAGE : upto]
    contacts = []
    for contact_id in shown:
        row = services.contacts.get(contact_id)
        activities = services.activities.for_contact(contact_id, limit=ACTIVITIES_PER_CONTACT)
        contacts.append(
            {"id": contact_id, "fields": fields_of(row) if row else {}, "activities": activities}
        )
    selection = services.fields.get()
    return {
        "account": view,
        "pending": set(selection.backfill) if selection else set(),
        "account_id": account_id,
        "contacts": contacts,
        "page": page,
        "more": len(ids) > upto,
        "first_shown": upto - CONTACTS_PER_PAGE + 1,
    }
