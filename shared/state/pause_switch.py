"""Whether the sync is paused (Marketo's Disable Sync), kept in storage so the pause lasts
across restarts of the host and holds for every instance of the Function App."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.storage import TableRepository, entity_or_none


@dataclass(frozen=True)
class Pause:
    since: datetime
    by: str  # who asked for it: the CLI's user@host, "api key", the console's user
    reason: str = ""  # what they said it was for


class PauseSwitch(TableRepository):
    PARTITION, ROW = "pause", "sync"

    def get(self) -> Pause | None:
        row = entity_or_none(self.table, self.PARTITION, self.ROW)
        if row is None:
            return None
        return Pause(since=row["since"], by=str(row.get("by", "")), reason=row.get("reason", ""))

    def pause(self, *, now: datetime, by: str, reason: str = "") -> Pause:
        """Pause, or keep the pause already on (its time stays the first one's)."""
        current = self.get()
        if current is not None:
            return current
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": self.ROW,
                "since": now,
                "by": by,
                "reason": reason,
            },
            mode=UpdateMode.REPLACE,
        )
        return Pause(now, by, reason)

    def resume(self) -> Pause | None:
        """End the pause; returns the one that was on, if any."""
        current = self.get()
        if current is not None:
            with contextlib.suppress(ResourceNotFoundError):  # resumed elsewhere meanwhile
                self.table.delete_entity(self.PARTITION, self.ROW)
        return current
