"""Field selection: which account columns sync, and whether the sync user can still read them.

Only columns the sync user can read may be selected (metadata `IsSecured`/`IsValidForRead` and
the user's own field-security grants). A newly selected column is backfilled for every account
without activities; a column that becomes unreadable is reported and keeps its mirrored values.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.dataverse.client import DataverseClient
from shared.dataverse.columns import DEFAULT_ACCOUNT_COLUMNS, ColumnInfo, account_catalogue
from shared.services import Services
from shared.state.fields import FieldSelection
from shared.times import utcnow

# The full metadata check costs a request; the grant check of secured columns runs every cycle.
METADATA_RECHECK = timedelta(hours=1)


class FieldSelectionError(ValueError):
    """A selection naming unknown or unreadable columns; nothing was stored."""

    def __init__(self, *, unknown: list[str], unreadable: list[str]):
        parts = []
        if unknown:
            parts.append(f"unknown account columns: {', '.join(unknown)}")
        if unreadable:
            parts.append(
                f"columns the Dynamics sync user cannot read: {', '.join(unreadable)} "
                "(grant read through a field security profile first)"
            )
        super().__init__("; ".join(parts))
        self.unknown = unknown
        self.unreadable = unreadable


def current_selection(services: Services, client: DataverseClient) -> FieldSelection:
    """The stored selection, or Marketo's default columns that the sync user can read."""
    stored = services.fields.get()
    if stored is not None:
        return stored
    catalogue = {c.name: c for c in account_catalogue(client) if c.readable}
    chosen = [catalogue[name] for name in DEFAULT_ACCOUNT_COLUMNS if name in catalogue]
    selection = _selection_of(chosen, backfill=[], now=utcnow())
    services.fields.put(selection)
    return selection


def list_fields(services: Services) -> list[dict[str, Any]]:
    """Every account column with its type, label, readability and whether it is selected."""
    client = services.dataverse()
    selection = current_selection(services, client)
    return [
        {
            "name": c.name,
            "type": c.type.value,
            "display_name": c.display_name,
            "readable": c.readable,
            "secured": c.secured,
            "selected": c.name in selection.columns,
        }
        for c in account_catalogue(client)
    ]


def select_fields(services: Services, names: list[str]) -> FieldSelection:
    """Store a new selection, or raise FieldSelectionError naming each offending column."""
    client = services.dataverse()
    previous = current_selection(services, client)
    catalogue = {c.name: c for c in account_catalogue(client)}
    wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in wanted if n not in catalogue]
    unreadable = [n for n in wanted if n in catalogue and not catalogue[n].readable]
    if unknown or unreadable or not wanted:
        if not wanted:
            raise FieldSelectionError(unknown=["(none given)"], unreadable=[])
        raise FieldSelectionError(unknown=unknown, unreadable=unreadable)
    added = [n for n in wanted if n not in previous.columns]
    backfill = [n for n in previous.backfill if n in wanted] + added
    selection = _selection_of([catalogue[n] for n in wanted], backfill=backfill, now=utcnow())
    services.fields.put(selection)
    return selection


def refresh_readability(
    services: Services, client: DataverseClient, selection: FieldSelection, *, now: datetime
) -> FieldSelection:
    """Re-check that the sync user can read every selected column; store what changed.

    Secured columns are re-checked every cycle (one request); the whole metadata hourly.
    """
    if selection.checked_at is None or now - selection.checked_at > METADATA_RECHECK:
        catalogue = {c.name: c for c in account_catalogue(client)}
        unreadable = [
            n for n in selection.columns if not (n in catalogue and catalogue[n].readable)
        ]
        secured = {
            n: catalogue[n].metadata_id
            for n in selection.columns
            if n in catalogue and catalogue[n].secured
        }
        checked_at = now
    elif selection.secured:
        granted = client.readable_secured_columns(client.user_id())
        unreadable = [
            n
            for n in selection.columns
            if n in selection.secured and selection.secured[n] not in granted
        ]
        secured, checked_at = selection.secured, selection.checked_at
    else:
        return selection
    # A column readable again missed its changes while hidden: load it whole once more.
    regained = [n for n in selection.unreadable if n not in unreadable]
    updated = replace(
        selection,
        secured=secured,
        unreadable=unreadable,
        backfill=list(dict.fromkeys(selection.backfill + regained)),
        checked_at=checked_at,
    )
    if updated != selection:
        services.fields.put(updated)
    return updated


def backfilled(services: Services, columns: list[str]) -> None:
    """Forget the backfill of columns whose full load has been enqueued."""
    if not columns:
        return
    stored = services.fields.get()
    if stored is not None:
        services.fields.put(
            replace(stored, backfill=[c for c in stored.backfill if c not in columns])
        )


def _selection_of(
    columns: list[ColumnInfo], *, backfill: list[str], now: datetime
) -> FieldSelection:
    return FieldSelection(
        columns={c.name: c.type for c in columns},
        secured={c.name: c.metadata_id for c in columns if c.secured},
        unreadable=[],
        backfill=backfill,
        checked_at=now,
    )
