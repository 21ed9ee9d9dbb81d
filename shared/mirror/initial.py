"""First loads: when each table's first load began and ended, and the rows it marked.

A first load writes no synced-stream entry (a third of its writes, for rows every walk from
before it must serve anyway). Its rows carry `load_sync = true` beside a `synced_at` that is
their batch's feed stamp, so the feed's watermark covers them as it covers entries, and a
`modified_since` walk reads them from the mirror table itself (shared/mirror/record_walks.py)
for the first loads whose interval overlaps the time it walks. A later ordinary sync of such a row
sets `load_sync = false` and writes its entry as any sync does.

An interval is one row of the state table: begun when the planner starts (or goes on with) a
first load, before any batch of it is sent, so every row it marks is synced after the start;
ended when the cycle that applied its last batch finishes, in two writes: `closed` first (a
batch that finds the load closed writes entries, as a replay from the poison queue does), then
`ended_ms`, so every row marked by a batch that found it open is synced before the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.mirror.feed_index import Stream, int64, ms_of, now_ms
from shared.mirror.row import IS_DELETED, LOAD_SYNC, SYNCED_AT
from shared.mirror.service_pages import service_page
from shared.storage import TableRepository

PARTITION = "initialloads"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The entity set whose first load marks each synced stream's rows.
ENTITY_SETS = {"accounts": Stream.SYNCED_ACCOUNTS, "contacts": Stream.SYNCED_CONTACTS}


def synced_stream(entity_set: str) -> Stream:
    return ENTITY_SETS[entity_set]


def time_of(at_ms: int) -> datetime:
    """The UTC time `at_ms` milliseconds after the epoch, exact (a float would round)."""
    return _EPOCH + timedelta(milliseconds=at_ms)


@dataclass(frozen=True)
class LoadInterval:
    stream: Stream
    began_ms: int
    closed: bool
    ended_ms: int | None  # None: under way, or closed a moment ago

    def overlaps(self, low_ms: int, high_ms: int) -> bool:
        """Whether rows it marked may be synced in [low_ms, high_ms)."""
        return self.began_ms < high_ms and (self.ended_ms is None or self.ended_ms > low_ms)


class InitialLoads(TableRepository):
    def intervals(self, stream: Stream) -> list[LoadInterval]:
        rows = self.table.query_entities(
            "PartitionKey eq @p and RowKey gt @low and RowKey lt @high",
            parameters={"p": PARTITION, "low": f"{stream.value}|", "high": f"{stream.value}|~"},
        )
        return [_interval(stream, row) for row in rows]

    def is_open(self, stream: Stream) -> bool:
        """Whether a first load of the stream's table is under way (its rows are marked)."""
        return any(not interval.closed for interval in self.intervals(stream))

    def overlap(self, stream: Stream, low_ms: int, high_ms: int) -> bool:
        """Whether a first load may have marked rows synced in [low_ms, high_ms)."""
        return low_ms < high_ms and any(i.overlaps(low_ms, high_ms) for i in self.intervals(stream))

    def begin(self, stream: Stream) -> None:
        """A first load of the stream's table starts (or goes on: nothing new then)."""
        if self.is_open(stream):
            return
        began = now_ms()
        self.table.upsert_entity(
            {
                "PartitionKey": PARTITION,
                "RowKey": f"{stream.value}|{began:013d}",
                "began_ms": int64(began),
                "closed": False,
            }
        )

    def end(self, stream: Stream) -> None:
        """Every batch of the stream's first load is applied (or poisoned: a replay writes
        entries). Closed first, then the end noted: a batch that found the load open took its
        stamp before the close, so before the end (one that was interrupted between the two is
        ended by the next call)."""
        unended = [i for i in self.intervals(stream) if i.ended_ms is None]
        for interval in unended:
            self._merge(interval, closed=True)
        ended = now_ms()
        for interval in unended:
            self._merge(interval, ended_ms=int64(ended))

    def _merge(self, interval: LoadInterval, **values: Any) -> None:
        row_key = f"{interval.stream.value}|{interval.began_ms:013d}"
        self.table.update_entity(
            {"PartitionKey": PARTITION, "RowKey": row_key, **values}, mode=UpdateMode.MERGE
        )


def first_load_rows(
    table: TableClient,
    low_ms: int,
    high_ms: int,
    continuation: Any,
    limit: int,
    *,
    include_deleted: bool,
    max_requests: int,
) -> tuple[list[TableEntity], Any]:
    """Up to `limit` rows a first load marked synced in [low_ms, high_ms), in key order, from
    the service's continuation; the next continuation (None: no more). A filtered query of the
    whole table: the service may answer short pages, so a few are read at most."""
    query = f"{LOAD_SYNC} eq true and {SYNCED_AT} ge @low and {SYNCED_AT} lt @high"
    if not include_deleted:
        query += f" and {IS_DELETED} eq false"
    rows: list[TableEntity] = []
    for _ in range(max_requests):
        page, continuation = service_page(
            table.query_entities(
                query,
                parameters={"low": time_of(low_ms), "high": time_of(high_ms)},
                results_per_page=limit - len(rows),
            ).by_page(continuation_token=continuation)
        )
        rows.extend(page)
        if not continuation or len(rows) >= limit:
            break
    return rows, continuation


def _interval(stream: Stream, row: TableEntity) -> LoadInterval:
    ended_ms = None if row.get("ended_ms") is None else ms_of(row, "ended_ms")
    return LoadInterval(stream, ms_of(row, "began_ms"), bool(row.get("closed")), ended_ms)
