"""The custom sync filter (Marketo's `new_synctomkto`): which accounts stay out of the mirror.

With the account Two Options column SYNC_FILTER_COLUMN on the table and readable, an account
whose value is explicitly No is not mirrored; missing, empty or Yes syncs. Yes → No keeps the
mirrored account, marked `sync_filtered`, and applies no more of its changes; No → Yes mirrors
it again as a first load. A column that is missing, unreadable or not Two Options filters
nothing, and status says so: better every account than silently none.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.dataverse.columns import SecuredGrants, TableColumns
from shared.services import Services
from shared.settings import Settings
from shared.state.filtered_accounts import FilterState, SyncFilter

HOW_TO_CREATE = (
    "create it in Dynamics as a Two Options (Yes/No) column on Account (docs/resync.md), or "
    "set SYNC_FILTER_COLUMN to the column's logical name"
)


def find_filter(settings: Settings, table: TableColumns, grants: SecuredGrants) -> SyncFilter:
    """The filter as the account table's metadata (and the sync user's grants) allow it."""
    column = settings.sync_filter_column
    if not column:
        return SyncFilter("", FilterState.OFF, "SYNC_FILTER_COLUMN is empty: every account syncs")
    info = table.columns.get(column)
    if info is None:
        return SyncFilter(
            column,
            FilterState.MISSING,
            f"the account table has no column {column}, so every account syncs; to filter, "
            + HOW_TO_CREATE,
        )
    if info.attribute_type != "Boolean":
        return SyncFilter(
            column,
            FilterState.NOT_TWO_OPTIONS,
            f"{column} is a {info.attribute_type} column, not Two Options, so every account "
            "syncs; point SYNC_FILTER_COLUMN at a Two Options (Yes/No) column",
        )
    why = table.unreadable(column, grants)
    if why is not None:
        return SyncFilter(
            column,
            FilterState.UNREADABLE,
            f"the sync user cannot read {column}, so every account syncs: {why.why}",
        )
    return SyncFilter(column, FilterState.ACTIVE, f"accounts whose {column} is No are not mirrored")


@dataclass(frozen=True)
class FilterStatus:
    """What status shows of the filter: its state (None before a cycle stored one), and how
    many accounts it keeps out."""

    sync_filter: SyncFilter | None
    filtered_accounts: int


def filter_status(services: Services) -> FilterStatus:
    return FilterStatus(services.filtered.filter(), services.filtered.count())
