"""Field selection (Marketo's "Select Fields to Sync"): which account columns sync.

Only columns the sync user can read may be selected. A newly selected column is backfilled for
every account without activities; one selected again after it was deselected is also re-synced
(Marketo's Quick Sync, shared/sync/resync.py), and a column whose re-sync has not finished
cannot be deselected. A selected column that becomes unreadable (deleted in
Dynamics, or secured without a grant) stays selected, is reported, and keeps its mirrored
values; the cycle's column check (shared/sync/schema.py) finds that out before every read.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.dataverse.columns import (
    DEFAULT_ACCOUNT_COLUMNS,
    SecuredGrants,
    TableColumns,
    Unreadable,
    column_limits,
    read_tables,
)
from shared.services import Services
from shared.state.fields import FieldSelection, Table
from shared.state.resync import new_resync
from shared.times import utcnow

if TYPE_CHECKING:  # local edits check fields without ever asking Dynamics
    from shared.dataverse.client import DataverseClient

# The limits local edits are held to change rarely (an admin editing a column): read daily.
LIMITS_RECHECK = timedelta(days=1)
HOW_TO_SELECT = "`acctsync fields select NAME,...` or PUT /api/sync/fields"
HOW_TO_LIST = "`acctsync fields list` or GET /api/sync/fields lists the account columns"


class FieldResyncPending(ValueError):
    """A selection that drops a column whose re-sync has not finished; nothing was stored."""

    def __init__(self, columns: list[str]):
        super().__init__(
            f"{', '.join(columns)} cannot be deselected while a re-sync of it is queued or "
            "under way; `acctsync status` shows its progress (`resyncs`): deselect it once "
            "that has finished"
        )
        self.columns = columns


class FieldSelectionError(ValueError):
    """A selection naming unknown or unreadable columns; nothing was stored."""

    def __init__(self, *, unknown: list[str], unreadable: dict[str, Unreadable]):
        parts = []
        if unknown:
            parts.append(f"unknown account columns: {', '.join(unknown)} ({HOW_TO_LIST})")
        for name, why in unreadable.items():
            parts.append(f"the Dynamics sync user cannot read {name}: {why.why}")
        super().__init__("; ".join(parts) or "select at least one account column")
        self.unknown = unknown
        self.unreadable = unreadable


def current_selection(services: Services, client: DataverseClient) -> FieldSelection:
    """The stored selection, or Marketo's default columns that the sync user can read."""
    stored = services.fields.get()
    if stored is not None:
        return stored
    table = _account_columns(client)
    grants = SecuredGrants(client)
    chosen = [
        name
        for name in DEFAULT_ACCOUNT_COLUMNS
        if name in table.columns and table.unreadable(name, grants) is None
    ]
    selection = _selection_of(client, table, chosen, backfill=[], now=utcnow())
    services.fields.put(selection)
    return selection


def list_fields(services: Services) -> list[dict[str, Any]]:
    """Every account column with its type, label, readability and whether it is selected; a
    selected column the org no longer has is listed too, unreadable."""
    client = services.dataverse()
    selection = current_selection(services, client)
    table = _account_columns(client, labels=True)
    grants = SecuredGrants(client)
    rows = []
    for info in sorted(table.columns.values(), key=lambda c: c.name):
        why = table.unreadable(info.name, grants)
        rows.append(_row(info.name, info.type.value, info.display_name, why, info.secured))
    for name in sorted(set(selection.columns) - set(table.columns)):
        rows.append(_row(name, selection.columns[name].value, name, Unreadable.DELETED, False))
    for row in rows:
        row["selected"] = row["name"] in selection.columns
        limits = selection.limits.get(row["name"])
        if row["selected"] and limits is not None:
            row["limits"] = limits.to_json()
    return rows


def select_fields(services: Services, names: list[str]) -> FieldSelection:
    """Store a new selection, or raise FieldSelectionError naming each offending column."""
    client = services.dataverse()
    previous = current_selection(services, client)
    table = _account_columns(client)
    grants = SecuredGrants(client)
    wanted = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [n for n in wanted if n not in table.columns]
    unreadable = {
        n: why for n in wanted if n in table.columns and (why := table.unreadable(n, grants))
    }
    if unknown or unreadable or not wanted:
        raise FieldSelectionError(unknown=unknown, unreadable=unreadable)
    resyncing = {r.field for r in services.resyncs.active()}
    if pending := [n for n in previous.columns if n not in wanted and n in resyncing]:
        raise FieldResyncPending(pending)
    added = [n for n in wanted if n not in previous.columns or n in previous.unreadable]
    backfill = list(dict.fromkeys([n for n in previous.backfill if n in wanted] + added))
    now = utcnow()
    selection = replace(
        _selection_of(client, table, wanted, backfill=backfill, now=now),
        retired=[
            n for n in dict.fromkeys(previous.retired + list(previous.columns)) if n not in wanted
        ],
    )
    services.fields.put(selection)
    # Selected before and again now: its mirrored values are stale, re-sync it (Quick Sync).
    for name in (n for n in added if n in previous.retired):
        services.resyncs.add(new_resync(name, now=now, by="fields select (selected again)"))
    return selection


def refresh_limits(
    services: Services, client: DataverseClient, table: TableColumns, selection: FieldSelection
) -> FieldSelection:
    """Read the selected columns' limits again once they are a day old."""
    now = utcnow()
    if selection.checked_at is not None and now - selection.checked_at < LIMITS_RECHECK:
        return selection
    limits = column_limits(client, table)
    updated = replace(
        selection,
        limits={n: limits[n] for n in selection.columns if n in limits},
        checked_at=now,
    )
    services.fields.put(updated)
    return updated


def backfilled(services: Services, table: Table, columns: list[str]) -> None:
    """Forget the backfill of columns whose full load has been enqueued."""
    if not columns:
        return
    stored = services.fields.get(table)
    if stored is not None:
        remaining = [c for c in stored.backfill if c not in columns]
        services.fields.put(replace(stored, backfill=remaining), table)


def field_problem(selection: FieldSelection | None, column: str) -> str | None:
    """Why a local edit may not set `column`; None when it may."""
    if selection is None or column not in selection.columns:
        return f"{column!r} is not a selected account field; select it first with {HOW_TO_SELECT}"
    why = selection.unreadable.get(column)
    if why is not None:
        return f"{column!r} is not readable by the Dynamics sync user now: {why.why}"
    return None


def _account_columns(client: DataverseClient, *, labels: bool = False) -> TableColumns:
    return read_tables(client, [Table.ACCOUNT.value], labels=labels)[Table.ACCOUNT.value]


def _selection_of(
    client: DataverseClient,
    table: TableColumns,
    names: list[str],
    *,
    backfill: list[str],
    now: datetime,
) -> FieldSelection:
    limits = column_limits(client, table)
    return FieldSelection(
        columns={n: table.columns[n].type for n in names},
        backfill=backfill,
        limits={n: limits[n] for n in names if n in limits},
        checked_at=now,
    )


def _row(name: str, kind: str, label: str, why: Unreadable | None, secured: bool) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "display_name": label,
        "readable": why is None,
        "secured": secured,
        "why": why.why if why else None,
    }
