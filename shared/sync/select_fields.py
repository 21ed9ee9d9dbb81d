"""Field selection (Marketo's "Select Fields to Sync"): which account columns sync.

Only columns the sync user can read may be selected. `select` replaces the selection; `add`
and `remove` (and the console's save) change only the columns they name. Every newly selected
column, and every one selected again after it was deselected (its mirrored values went stale
meanwhile), is backfilled: the next cycle's one re-load of the accounts writes all of their
Dynamics values at once, nulls included, without activities. That one re-read is what any
newly selected column needs anyway, so selecting twelve columns again costs one read of the
table, not a re-sync per column. A column whose re-sync (`acctsync resync`) has not finished
cannot be deselected. A selected column that becomes unreadable (deleted in Dynamics, or
secured without a grant) stays selected, is reported, and keeps its mirrored values; the
cycle's column check (shared/sync/column_access.py) finds that out before every read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.audited_actions import audited
from shared.dataverse.columns import (
    DEFAULT_ACCOUNT_COLUMNS,
    SecuredGrants,
    TableColumns,
    Unreadable,
    column_limits,
    read_tables,
)
from shared.dataverse.problems import DataverseError
from shared.errors import AcctsyncError
from shared.services import Services
from shared.settings import SettingsError
from shared.state.audit_trail import Actor, AuditAction
from shared.state.field_selections import FieldSelection, Table
from shared.times import utcnow

if TYPE_CHECKING:  # local edits check fields without ever asking Dynamics
    from shared.dataverse.client import DataverseClient

# The limits local edits are held to change rarely (an admin editing a column): read daily.
LIMITS_RECHECK = timedelta(days=1)
HOW_TO_SELECT = "`acctsync fields select NAME,...` or PUT /api/sync/fields"
HOW_TO_LIST = "`acctsync fields list` or GET /api/sync/fields lists the account columns"


@dataclass(frozen=True)
class SelectionChange:
    """A stored selection and what it changed: what scripts and admins are told."""

    selection: FieldSelection
    added: list[str]  # selected now and not before (or readable again): backfilled
    removed: list[str]  # selected before and not now: they stop syncing, values kept

    def describe(self) -> str:
        """What the change does, in a sentence or two (the CLI's stderr)."""
        parts = [f"{len(self.selection.columns)} account columns selected"]
        if self.added:
            parts.append(
                f"added {', '.join(self.added)}: the next cycle loads their Dynamics values "
                "for every account in one re-read, logging no activities"
            )
        if self.removed:
            parts.append(
                f"removed {', '.join(self.removed)}: they stop syncing; their mirrored values "
                "are kept (`acctsync fields add` selects them again)"
            )
        if not self.added and not self.removed:
            parts.append("nothing added or removed")
        return "; ".join(parts)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "selected": list(self.selection.columns),
            "added": self.added,
            "removed": self.removed,
            "backfill": self.selection.backfill,
        }


class FieldResyncPending(AcctsyncError, ValueError):
    """A selection that drops a column whose re-sync has not finished; nothing was stored."""

    def __init__(self, columns: list[str]):
        super().__init__(
            f"{', '.join(columns)} cannot be deselected while a re-sync of it is queued or "
            "under way; `acctsync status` shows its progress (`resyncs`): deselect it once "
            "that has finished"
        )
        self.columns = columns


class FieldSelectionError(AcctsyncError, ValueError):
    """A selection naming unknown or unreadable columns; nothing was stored."""

    def __init__(self, *, unknown: list[str], unreadable: dict[str, Unreadable]):
        parts = [unknown_columns(unknown)] if unknown else []
        parts += [unreadable_column(name, why) for name, why in unreadable.items()]
        super().__init__("; ".join(parts) or "select at least one account column")
        self.unknown = unknown
        self.unreadable = unreadable


def current_selection(services: Services, client: DataverseClient) -> FieldSelection:
    """The stored selection, or Marketo's default columns that the sync user can read."""
    stored = services.fields.get()
    if stored is not None:
        return stored
    table = _account_columns(client, labels=True)
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


def select_fields(services: Services, names: Sequence[str], *, actor: Actor) -> SelectionChange:
    """Replace the selection with `names`, or raise FieldSelectionError naming each offending
    column (every named column is checked)."""
    wanted = _names(names)
    return _store(services, actor, checked=wanted, wanted=lambda _: wanted)


def edit_fields(
    services: Services, *, actor: Actor, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> SelectionChange:
    """Add and remove columns, leaving the others as they are (a selected column the sync user
    cannot read now stays selected); the columns added are checked as `select` checks them."""
    adding, removing = _names(add), _names(remove)

    def wanted(previous: FieldSelection) -> list[str]:
        kept = [n for n in previous.columns if n not in removing]
        return list(dict.fromkeys(kept + [n for n in adding if n not in removing]))

    return _store(services, actor, checked=adding, wanted=wanted, removing=removing)


def _store(
    services: Services,
    actor: Actor,
    *,
    checked: list[str],
    wanted: Callable[[FieldSelection], list[str]],
    removing: Sequence[str] = (),
) -> SelectionChange:
    """Every selection change, recorded in the audit trail: the selection before and after."""
    stored = services.fields.get()
    before = {"selected": list(stored.columns) if stored else None}
    with audited(services, actor, AuditAction.FIELD_SELECTION, before=before) as record:
        change = _stored_change(services, checked=checked, wanted=wanted, removing=removing)
        record.after = {
            "selected": list(change.selection.columns),
            "added": change.added,
            "removed": change.removed,
        }
    return change


def _stored_change(
    services: Services,
    *,
    checked: list[str],
    wanted: Callable[[FieldSelection], list[str]],
    removing: Sequence[str],
) -> SelectionChange:
    client = services.dataverse()
    previous = current_selection(services, client)
    table = _account_columns(client, labels=True)  # the display names, in the same request
    grants = SecuredGrants(client)
    chosen = wanted(previous)
    known = set(table.columns) | set(previous.columns)  # a deleted column can be removed
    unknown = [n for n in checked if n not in table.columns]
    unknown += [n for n in removing if n not in known and n not in unknown]
    unreadable = {
        n: why for n in checked if n in table.columns and (why := table.unreadable(n, grants))
    }
    if unknown or unreadable or not chosen:
        raise FieldSelectionError(unknown=unknown, unreadable=unreadable)
    resyncing = {r.field for r in services.resyncs.active()}
    if pending := [n for n in previous.columns if n not in chosen and n in resyncing]:
        raise FieldResyncPending(pending)
    # New, or readable again: its values have to be loaded whole. One selected before and
    # again now is stale (not refreshed while deselected): the same backfill refreshes it.
    added = [
        n
        for n in chosen
        if n not in previous.columns or (n in previous.unreadable and n in checked)
    ]
    backfill = list(dict.fromkeys([n for n in previous.backfill if n in chosen] + added))
    selection = _selection_of(client, table, chosen, backfill=backfill, now=utcnow())
    kept_types = {n: t for n, t in previous.columns.items() if n in chosen}
    selection = replace(
        selection,
        columns={n: selection.columns.get(n) or kept_types[n] for n in chosen},
        unreadable={n: w for n, w in previous.unreadable.items() if n in chosen and n not in added},
    )
    services.fields.put(selection)
    removed = [n for n in previous.columns if n not in chosen]
    return SelectionChange(selection, added=added, removed=removed)


def _names(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))


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


def unknown_columns(names: Sequence[str]) -> str:
    """The one wording, everywhere (CLI, API, console), of names the account table lacks."""
    return f"unknown account columns: {', '.join(names)} ({HOW_TO_LIST})"


def unreadable_column(name: str, why: Unreadable) -> str:
    """The one wording, everywhere, of a column the sync user cannot read, and what to do."""
    return f"the Dynamics sync user cannot read {name}: {why.why}"


class AccountCatalogue:
    """The account table's columns as Dynamics describes them, read once and only when a
    refusal has to say why a column is not selected: it does not exist, or the sync user cannot
    read it, or it merely is not selected. Local edits of selected columns never ask."""

    def __init__(self, services: Services):
        self._services = services
        self._checked: tuple[TableColumns, SecuredGrants] | None = None

    def refusal(self, column: str) -> str | None:
        """Why `column` cannot be selected; None when it could be (or Dynamics cannot say)."""
        try:
            if self._checked is None:
                client = self._services.dataverse()
                self._checked = (_account_columns(client), SecuredGrants(client))
            table, grants = self._checked
            if column not in table.columns:
                return unknown_columns([column])
            why = table.unreadable(column, grants)
        except (DataverseError, SettingsError):
            return None  # Dynamics unreachable: the refusal still says what to do
        return unreadable_column(column, why) if why else None


def field_problem(
    selection: FieldSelection | None, column: str, *, catalogue: AccountCatalogue | None = None
) -> str | None:
    """Why a local edit may not set `column`; None when it may."""
    if selection is None or column not in selection.columns:
        refusal = catalogue.refusal(column) if catalogue is not None else None
        return refusal or (
            f"{column!r} is not a selected account field; select it first with {HOW_TO_SELECT}"
        )
    why = selection.unreadable.get(column)
    if why is not None:
        return unreadable_column(column, why)
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
        # A selected column Dynamics no longer has keeps its stored type (the caller's).
        columns={n: table.columns[n].type for n in names if n in table.columns},
        backfill=backfill,
        limits={n: limits[n] for n in names if n in limits},
        checked_at=now,
        display_names={
            n: label
            for n in names
            if n in table.columns and (label := table.columns[n].display_name) != n
        },
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
