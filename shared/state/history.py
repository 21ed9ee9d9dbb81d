"""Finished cycles (Marketo's "Sync Status"), newest first: one row per cycle."""

from __future__ import annotations

from datetime import datetime

from shared.state.summary import CycleSummary
from shared.storage import TableRepository
from shared.times import inverted_ms, newest_first_query


class CycleHistory(TableRepository):
    """Finished cycles, newest first."""

    PARTITION = "history"

    def add(self, summary: CycleSummary, *, started_at: datetime) -> None:
        """Keyed by the cycle's start: adding the same cycle again replaces its row."""
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": inverted_ms(started_at) + "|" + summary.cycle_id,
                "summary": summary.to_text(),
            }
        )

    def latest(self, count: int = 10) -> list[CycleSummary]:
        return self.between(None, None, count=count)

    def between(
        self, since: datetime | None, until: datetime | None, *, count: int
    ) -> list[CycleSummary]:
        """Up to `count` cycles started in [since, until], newest first: one key range."""
        if count <= 0:
            return []
        query, parameters = newest_first_query(self.PARTITION, since, until)
        rows = self.table.query_entities(
            query, parameters=parameters, results_per_page=min(count, 1000)
        )
        result: list[CycleSummary] = []
        for row in rows:
            if len(result) >= count:
                break
            result.append(CycleSummary.from_text(row["summary"]))
        return result
