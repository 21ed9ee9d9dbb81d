"""Where each table's change-tracking chain stands: its delta link, and the re-load generation.

A delta link is committed only after every page of its chain has been enqueued, so a crash
before the commit re-reads the same changes, which the apply step ignores as applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from azure.data.tables import TableEntity, UpdateMode

from shared.storage import TableRepository, entity_or_none


@dataclass(frozen=True)
class Cursor:
    entity_set: str
    delta_link: str
    select: str
    updated_at: datetime
    # The last full re-load of the table stamped every row it saw with this number; rows with
    # an older stamp were gone from Dynamics (shared/sync/apply/sweep.py).
    generation: int = 0
    # When the chain behind the link began to be read: a change Dynamics made since then may
    # or may not be in the mirror yet (a verify counts it as pending). None: stored by 0.3.
    read_at: datetime | None = None


class Cursors(TableRepository):
    PARTITION = "cursor"

    def get(self, entity_set: str) -> Cursor | None:
        entity = entity_or_none(self.table, self.PARTITION, entity_set)
        return None if entity is None else _cursor(entity)

    def commit(self, cursor: Cursor) -> None:
        entity = {
            "PartitionKey": self.PARTITION,
            "RowKey": cursor.entity_set,
            "delta_link": cursor.delta_link,
            "select": cursor.select,
            "updated_at": cursor.updated_at,
            "generation": cursor.generation,
        }
        if cursor.read_at is not None:
            entity["read_at"] = cursor.read_at
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def drop(self, entity_set: str) -> None:
        self.table.delete_entity(self.PARTITION, entity_set)

    def all(self) -> list[Cursor]:
        rows = self.table.query_entities("PartitionKey eq @p", parameters={"p": self.PARTITION})
        return [_cursor(row) for row in rows]


def _cursor(row: TableEntity) -> Cursor:
    return Cursor(
        entity_set=str(row["RowKey"]),
        delta_link=str(row["delta_link"]),
        select=str(row.get("select", "")),
        updated_at=row["updated_at"],
        generation=int(row.get("generation", 0)),
        read_at=row.get("read_at"),
    )
