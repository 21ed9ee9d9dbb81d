"""Mirrored accounts: read only. Accounts come from Dynamics; nothing here creates one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shared.mirror.record_walks import account_fields
from shared.mirror.records import fields_of, labels_shown
from shared.mirror.row import SYNCED_AT, is_deleted, is_sync_filtered, local_edits
from shared.services import Services
from shared.times import iso
from shared.web.error_answers import ApiError
from shared.web.models import Account
from shared.web.routes.depends import ERRORS, GuidPath, ServicesDep, guid

router = APIRouter(prefix="/api/accounts", tags=["accounts"], responses=ERRORS)


def account_view(services: Services, account_id: str) -> Account | None:
    row = services.accounts.get(account_id)
    if row is None:
        return None
    selection = services.fields.get()
    fields = account_fields(selection)(fields_of(row))
    names = selection.display_names if selection is not None else {}
    return Account(
        accountid=account_id,
        fields=fields,
        formatted=labels_shown(row, fields),
        display_names={n: names[n] for n in fields if n in names},
        contact_count=services.members.count(account_id),
        is_deleted=is_deleted(row),
        locally_modified=local_edits(row),
        synced_at=iso(row.get(SYNCED_AT)),
        sync_filtered=is_sync_filtered(row),
    )


def selected_fields(services: Services, fields: dict[str, Any]) -> dict[str, Any]:
    """The selected columns only (a deselected one keeps its last value, unshown)."""
    return account_fields(services.fields.get())(fields)


def _from_dynamics() -> ApiError:
    return ApiError(
        405,
        "accounts_come_from_dynamics",
        "accounts are created in Dynamics only; create it there and the next cycle mirrors it",
    )


@router.get("/{accountid}", summary="A mirrored account")
def get_account(accountid: GuidPath, services: ServicesDep) -> Account:
    account_id = guid(accountid)
    view = account_view(services, account_id)
    if view is None:
        raise ApiError(404, "account_not_found", f"no mirrored account {account_id}")
    return view


@router.post("", summary="Always refused: accounts are created in Dynamics only", status_code=405)
def create_account() -> None:
    raise _from_dynamics()


@router.post("/{accountid}", summary="Always refused: accounts come from Dynamics", status_code=405)
@router.put("/{accountid}", summary="Always refused: accounts come from Dynamics", status_code=405)
def write_account(accountid: str) -> None:
    raise _from_dynamics()
