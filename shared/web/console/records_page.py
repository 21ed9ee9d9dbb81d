"""Records: one account as mirrored (its locally modified fields marked), its contacts a page
at a time, and each contact's Change Data Value activities, newest first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.ids import InvalidId, parse_guid
from shared.mirror.records import fields_of
from shared.web.console.pages import SessionDep, render
from shared.web.routes.accounts import account_view
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
CONTACTS_PER_PAGE = 10
ACTIVITIES_PER_CONTACT = 50


@router.get("/records")
def records_page(
    request: Request, services: ServicesDep, session: SessionDep, id: str = "", page: int = 1
) -> Response:
    context: dict[str, Any] = {"id": id, "account": None, "problem": None, "contacts": []}
    if id.strip():
        try:
            account_id = parse_guid(id.strip())
        except InvalidId as error:
            context["problem"] = str(error)
        else:
            context.update(_account(services, account_id, max(page, 1)))
    return render(request, "records.html", context, session=session)


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
    return {
        "account": view,
        "account_id": account_id,
        "contacts": contacts,
        "page": page,
        "more": len(ids) > upto,
        "first_shown": upto - CONTACTS_PER_PAGE + 1,
    }
