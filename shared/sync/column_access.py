"""The column check every planning heartbeat makes before it reads (one metadata request for
both tables), so the org changing under a running sync never fails a cycle.

- A table without change tracking stops the cycle with the fix (ChangeTrackingDisabled).
- A column the org no longer has, or that is not valid for read, leaves `$select` (the table's
  chain starts again without it) and keeps its mirrored values.
- A secured column stays in `$select`, but while the sync user has no read grant its values
  (the nulls Dynamics sends) are not applied. The grants cost a request, so they are asked only
  when a page with rows is about to be packed, or to see whether a column is readable again:
  an idle cycle stays at three requests.
- A column readable again is backfilled: its table is read again in full, logging nothing.
- The sync filter's column is looked up in the same metadata (shared/sync/filter.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from shared.dataverse.client import DataverseClient
from shared.dataverse.columns import (
    CONTACT_COLUMNS,
    SecuredGrants,
    TableColumns,
    Unreadable,
    read_tables,
)
from shared.dataverse.problems import ChangeTrackingDisabled
from shared.mapping import ColumnType
from shared.services import Services
from shared.state.field_selections import FieldSelection, Table
from shared.state.filtered_accounts import SyncFilter
from shared.sync.filter import find_filter
from shared.sync.select_fields import current_selection, refresh_limits


@dataclass
class ColumnAccess:
    """What the sync user can read of one table's columns in this heartbeat."""

    table: Table
    selection: FieldSelection
    columns: TableColumns
    grants: SecuredGrants
    unreadable: dict[str, Unreadable] = field(default_factory=dict)
    _pending: list[str] = field(default_factory=list)  # secured, grant not asked yet
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name in self.selection.columns:
            info = self.columns.columns.get(name)
            if info is None or not info.valid_for_read or not info.secured:
                why = self.columns.unreadable(name, self.grants)
                if why is not None:
                    self.unreadable[name] = why
            elif name in self.selection.unreadable or self.grants.asked:
                # Unreadable until now: ask at once whether that is still so.
                if (why := self.columns.unreadable(name, self.grants)) is not None:
                    self.unreadable[name] = why
            else:
                self._pending.append(name)

    @property
    def regained(self) -> list[str]:
        """Columns unreadable before and readable now: their values have to be loaded whole."""
        before = self.selection.unreadable
        return [n for n in before if n not in self.unreadable and n not in self._pending]

    @property
    def backfill(self) -> tuple[str, ...]:
        """The columns this heartbeat's read loads for every row, without activities."""
        wanted = dict.fromkeys(self.selection.backfill + self.regained)
        return tuple(n for n in wanted if n in self.selection.columns)

    @property
    def select(self) -> dict[str, ColumnType]:
        """The columns the table's chain selects."""
        return {
            n: t
            for n, t in self.selection.columns.items()
            if n not in self.unreadable or not self.unreadable[n].leaves_select
        }

    def readable(self) -> dict[str, ColumnType]:
        """The columns whose values are applied: asks for the grants when a selected secured
        column depends on them."""
        with self._lock:
            for name in self._pending:
                if (why := self.columns.unreadable(name, self.grants)) is not None:
                    self.unreadable[name] = why
            self._pending.clear()
        return {n: t for n, t in self.selection.columns.items() if n not in self.unreadable}

    def known(self) -> dict[str, Unreadable]:
        """What is unreadable, as far as this heartbeat knows: a secured column whose grant
        was not asked keeps what was known before."""
        known = dict(self.unreadable)
        for name in self._pending:
            if name in self.selection.unreadable:
                known[name] = self.selection.unreadable[name]
        return known


@dataclass(frozen=True)
class CycleColumns:
    account: ColumnAccess
    contact: ColumnAccess
    sync_filter: SyncFilter


def check_columns(services: Services, client: DataverseClient) -> CycleColumns:
    """Read both tables' metadata (one request) and store what changed since the last check."""
    tables = read_tables(client, [Table.ACCOUNT.value, Table.CONTACT.value])
    for table in tables.values():
        if not table.change_tracking:
            raise ChangeTrackingDisabled(table.table)
    grants = SecuredGrants(client)
    account_table = tables[Table.ACCOUNT.value]
    selection = current_selection(services, client)
    selection = refresh_limits(services, client, account_table, selection)
    contact = services.fields.get(Table.CONTACT)
    if contact is None or contact.columns != CONTACT_COLUMNS:
        contact = FieldSelection(dict(CONTACT_COLUMNS))
    checked = CycleColumns(
        ColumnAccess(Table.ACCOUNT, selection, account_table, grants),
        ColumnAccess(Table.CONTACT, contact, tables[Table.CONTACT.value], grants),
        find_filter(services.settings, account_table, grants),
    )
    services.filtered.put_filter(checked.sync_filter)
    for access in (checked.account, checked.contact):
        _store(services, access, backfill=list(access.regained))
    return checked


def store_unreadable(services: Services, access: ColumnAccess) -> None:
    """Store what a table's read learnt of its secured columns."""
    _store(services, access, backfill=[])


def _store(services: Services, access: ColumnAccess, *, backfill: list[str]) -> None:
    stored = services.fields.get(access.table) or access.selection
    if stored.columns != access.selection.columns:
        return  # selected anew meanwhile: the next heartbeat checks the new selection
    updated = replace(
        stored,
        unreadable=access.known(),
        backfill=list(dict.fromkeys(stored.backfill + backfill)),
    )
    if updated != stored:
        services.fields.put(updated, access.table)
