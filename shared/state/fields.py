"""The account columns chosen to sync (Marketo's "Select Fields to Sync"), as stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.mapping import ColumnType
from shared.times import iso, parse_iso


@dataclass(frozen=True)
class FieldSelection:
    columns: dict[str, ColumnType]
    # MetadataId of each selected column under field security, to re-check the grant cheaply.
    secured: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    # Columns whose values the next cycle loads for every account, without activities.
    backfill: list[str] = field(default_factory=list)
    checked_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "columns": {k: v.value for k, v in self.columns.items()},
                "secured": self.secured,
                "unreadable": self.unreadable,
                "backfill": self.backfill,
                "checked_at": iso(self.checked_at),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FieldSelection:
        data = json.loads(text)
        checked = data.get("checked_at")
        return cls(
            columns={k: ColumnType(v) for k, v in data["columns"].items()},
            secured=dict(data.get("secured", {})),
            unreadable=list(data.get("unreadable", [])),
            backfill=list(data.get("backfill", [])),
            checked_at=parse_iso(checked) if checked else None,
        )


class FieldSelections:
    PARTITION, ROW = "fields", "account"

    def __init__(self, table: TableClient):
        self.table = table

    def get(self) -> FieldSelection | None:
        try:
            row = self.table.get_entity(self.PARTITION, self.ROW)
        except ResourceNotFoundError:
            return None
        return FieldSelection.from_json(row["selection"])

    def put(self, selection: FieldSelection) -> None:
        self.table.upsert_entity(
            {"PartitionKey": self.PARTITION, "RowKey": self.ROW, "selection": selection.to_json()},
            mode=UpdateMode.REPLACE,
        )
