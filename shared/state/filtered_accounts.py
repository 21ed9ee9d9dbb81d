"""The sync filter as the last cycle found it, and the accounts it keeps out of the mirror.

The accounts are kept one row each (their ids only), so status can say how many there are:
an account whose explicit No kept it out was never mirrored, and nothing else records it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.mirror.writes import upsert_all
from shared.storage import TableRepository, entity_or_none


class FilterState(StrEnum):
    ACTIVE = "active"  # the column is there and readable: an explicit No keeps an account out
    OFF = "off"  # SYNC_FILTER_COLUMN is empty
    MISSING = "missing"  # the account table has no such column: every account syncs
    UNREADABLE = "unreadable"  # there, but the sync user cannot read it: every account syncs
    NOT_TWO_OPTIONS = "not_two_options"  # there, but not a Yes/No column: every account syncs


@dataclass(frozen=True)
class SyncFilter:
    column: str
    state: FilterState
    detail: str

    @property
    def active(self) -> bool:
        return self.state is FilterState.ACTIVE

    def excludes(self, row: dict[str, object]) -> bool:
        """Only an explicit No keeps an account out; missing, empty or Yes syncs."""
        return self.active and row.get(self.column) is False

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "state": self.state.value}


class FilteredAccounts(TableRepository):
    """Rows in the state table: one for the filter, one per account it keeps out."""

    FILTER_PARTITION, FILTER_ROW = "syncfilter", "filter"
    PARTITION = "filtered"

    def filter(self) -> SyncFilter | None:
        row = entity_or_none(self.table, self.FILTER_PARTITION, self.FILTER_ROW)
        if row is None:
            return None
        data = json.loads(row["filter"])
        return SyncFilter(data["column"], FilterState(data["state"]), data["detail"])

    def put_filter(self, found: SyncFilter) -> None:
        """Store what this heartbeat found, when it differs from what was stored."""
        if self.filter() == found:
            return
        self.table.upsert_entity(
            {
                "PartitionKey": self.FILTER_PARTITION,
                "RowKey": self.FILTER_ROW,
                "filter": json.dumps(found.to_json()),
            },
            mode=UpdateMode.REPLACE,
        )

    def add_all(self, account_ids: Iterable[str]) -> None:
        upsert_all(self.table, ({"PartitionKey": self.PARTITION, "RowKey": i} for i in account_ids))

    def remove(self, account_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, account_id)

    def count(self) -> int:
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": self.PARTITION}, select=["RowKey"]
        )
        return sum(1 for _ in rows)
