"""The columns that sync, per table, as stored: the account columns chosen (Marketo's "Select
Fields to Sync"), the fixed contact columns, and which of them the sync user cannot read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from azure.data.tables import UpdateMode

from shared.dataverse.columns import Unreadable
from shared.mapping import ColumnLimits, ColumnType
from shared.storage import TableRepository, entity_or_none
from shared.times import iso, parse_iso


class Table(StrEnum):
    ACCOUNT = "account"
    CONTACT = "contact"

    @property
    def entity_set(self) -> str:
        return self.value + "s"


@dataclass(frozen=True)
class FieldSelection:
    columns: dict[str, ColumnType]
    # Selected columns the sync user cannot read now, and why: they sync again when readable.
    unreadable: dict[str, Unreadable] = field(default_factory=dict)
    # Columns whose values the next cycle loads for every row, without activities.
    backfill: list[str] = field(default_factory=list)
    # What Dynamics lets each selected column hold, for local edits.
    limits: dict[str, ColumnLimits] = field(default_factory=dict)
    # When the limits were read.
    checked_at: datetime | None = None
    # Column -> its display name in Dynamics, where it has one of its own (read when the
    # selection is stored; one stored by an earlier version has none until it is saved again).
    display_names: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "columns": {k: v.value for k, v in self.columns.items()},
                "unreadable": {k: v.value for k, v in self.unreadable.items()},
                "backfill": self.backfill,
                "limits": {k: v.to_json() for k, v in self.limits.items()},
                "checked_at": iso(self.checked_at),
                "display_names": self.display_names,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FieldSelection:
        data = json.loads(text)
        checked = data.get("checked_at")
        unreadable = data.get("unreadable", {})
        if isinstance(unreadable, list):  # stored by 0.3, which knew only secured columns
            unreadable = dict.fromkeys(unreadable, Unreadable.SECURED.value)
        return cls(
            columns={k: ColumnType(v) for k, v in data["columns"].items()},
            unreadable={k: Unreadable(v) for k, v in unreadable.items()},
            backfill=list(data.get("backfill", [])),
            limits={k: ColumnLimits.from_json(v) for k, v in data.get("limits", {}).items()},
            checked_at=parse_iso(checked) if checked else None,
            display_names={str(k): str(v) for k, v in data.get("display_names", {}).items()},
        )


class FieldSelections(TableRepository):
    """One row per table in the state table."""

    PARTITION = "fields"

    def get(self, table: Table = Table.ACCOUNT) -> FieldSelection | None:
        row = entity_or_none(self.table, self.PARTITION, table.value)
        return None if row is None else FieldSelection.from_json(row["selection"])

    def put(self, selection: FieldSelection, table: Table = Table.ACCOUNT) -> None:
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": table.value,
                "selection": selection.to_json(),
            },
            mode=UpdateMode.REPLACE,
        )
