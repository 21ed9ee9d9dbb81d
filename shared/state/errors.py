"""Per-record sync errors (Marketo's "Sync Errors"): record id, operation and message."""

from __future__ import annotations

import re
from typing import Any

from azure.data.tables import TableClient

from shared.times import inverted_ms, iso, utcnow

# Table keys refuse / \ # ? and control characters.
_UNSAFE_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class SyncErrors:
    PARTITION = "errors"

    def __init__(self, table: TableClient):
        self.table = table

    def record(
        self, *, entity: str, record_id: str, operation: str, message: str, cycle_id: str
    ) -> None:
        now = utcnow()
        # The id may be whatever a bad row carried: keep it whole in a property, and only a
        # key-safe form of it in the RowKey.
        safe_id = _UNSAFE_KEY.sub("_", record_id)[:100]
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": f"{inverted_ms(now)}|{entity}|{safe_id}",
                "entity": entity,
                "record_id": record_id,
                "operation": operation,
                "message": message[:2000],
                "cycle_id": cycle_id,
                "at": now,
            }
        )

    def latest(self, count: int = 50) -> list[dict[str, Any]]:
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": self.PARTITION}, results_per_page=count
        )
        result: list[dict[str, Any]] = []
        for row in rows:
            if len(result) >= count:
                break
            result.append(
                {
                    "entity": row["entity"],
                    "id": row["record_id"],
                    "operation": row["operation"],
                    "message": row["message"],
                    "cycle_id": row["cycle_id"],
                    "at": iso(row["at"]),
                }
            )
        return result
