"""The change feeds: time-ordered index entries of activities logged, records deleted and
records synced, and the stamps that make them safe to follow while cycles write.

Keys. Every entry of a stream sits at `PartitionKey = "<stream>|<hour>"`, `RowKey =
"<stamp ms, 13 digits>|<what it indexes>"`, so one stream is one key range ordered by its
stamp: a page is one range query from where the last one stopped, never a scan.

Stamps. A stamp is the logging time of one unit of work (a queued batch, a local edit),
fixed the first time that unit writes an entry and kept under the unit's identity: a batch
applied again (redelivered, or its conflicts re-applied) finds its stamp and writes the very
same keys, so it adds nothing. Entries are written before the rows they describe.

Safe point. Units commit out of order, and a slow one must never insert behind a reader. So a
stamp is *open* from before its first entry until its unit has finished (an "open" marker,
created in one transaction with the stamp), and readers serve only entries older than the
watermark: the oldest open stamp, and at most now minus the settle time (5 s): a stamp just
taken may not be visible yet, so taking one that took longer than half of the settle time
(less clock skew) is done again, later. A unit that crashed keeps its stamp open until its
redelivery finishes it; a marker older than OPEN_FOR_MS (longer than a function may run) no
longer holds readers back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from shared.mirror.writes import upsert_all

WINDOW_MS = 3_600_000  # one partition per stream and hour
# Clock skew between instances (NTP keeps Azure's far under this) is allowed for on top of
# twice the longest a stamp may take to be taken.
CLOCK_SKEW_MS = 1_000
OPEN_FOR_MS = 35 * 60_000
# Service pages one API page may read (a page of a filtered walk may come back short).
MAX_REQUESTS = 4


class Stream(StrEnum):
    ACTIVITIES = "act"
    DELETED = "del"
    SYNCED_ACCOUNTS = "syncacc"
    SYNCED_CONTACTS = "synccon"


def now_ms() -> int:
    return int(time.time() * 1000)


def partition(stream: Stream, at_ms: int) -> str:
    return f"{stream.value}|{at_ms // WINDOW_MS:09d}"


def start_position(at_ms: int) -> str:
    """The position just before everything stamped at or after `at_ms`."""
    return f"{max(at_ms, 0):013d}"


def caught_up(watermark_ms: int) -> str:
    """The position after everything stamped before `watermark_ms` ('~' sorts after any
    character of an entry's key)."""
    return f"{watermark_ms - 1:013d}|~"


def _int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def _ms(row: Mapping[str, Any], name: str) -> int:
    value = row[name]
    return int(value.value if isinstance(value, EntityProperty) else value)


def _stamp_ms(position: str) -> int:
    return int(position[:13])


@dataclass(frozen=True)
class Stamp:
    identity: str
    at_ms: int

    def keys(self, stream: Stream, suffix: str) -> dict[str, str]:
        return {
            "PartitionKey": partition(stream, self.at_ms),
            "RowKey": f"{self.at_ms:013d}|{suffix}",
        }


class Stamps:
    """Stamps and their open markers: one partition, `unit|<identity>` and `open|<identity>`,
    so a stamp and its marker are created in one transaction."""

    PARTITION = "stamps"

    def __init__(self, table: TableClient, *, settle_ms: int):
        self.table = table
        self.settle_ms = settle_ms
        self.marker_limit_ms = max(100, (settle_ms - CLOCK_SKEW_MS) // 2)

    def take(self, identity: str) -> Stamp:
        """The unit's stamp: the one it took before, or a new one, open."""
        known = self._known(identity)
        if known is not None:
            return known
        started = now_ms()
        try:
            self.table.submit_transaction(
                [(TransactionOperation.CREATE, row) for row in self._rows(identity, started)]
            )
        except (ResourceExistsError, TableTransactionError):
            # Another delivery of the same unit took it just now: share it.
            known = self._known(identity)
            if known is None:
                raise
            return known
        # Too slow: a reader may have passed `started` before the marker was visible, so the
        # stamp is taken again, later (nothing was written under the first one yet).
        while now_ms() - started > self.marker_limit_ms:
            started = now_ms()
            rows = self._rows(identity, started)
            self.table.submit_transaction(
                [(TransactionOperation.UPSERT, row, {"mode": UpdateMode.REPLACE}) for row in rows]
            )
        return Stamp(identity, started)

    def _known(self, identity: str) -> Stamp | None:
        try:
            row = self.table.get_entity(self.PARTITION, f"unit|{identity}")
        except ResourceNotFoundError:
            return None
        return Stamp(identity, _ms(row, "at_ms"))

    def _rows(self, identity: str, at_ms: int) -> list[dict[str, Any]]:
        return [
            {"PartitionKey": self.PARTITION, "RowKey": f"unit|{identity}", "at_ms": _int64(at_ms)},
            {
                "PartitionKey": self.PARTITION,
                "RowKey": f"open|{identity}",
                "at_ms": _int64(at_ms),
                "expires_ms": _int64(at_ms + OPEN_FOR_MS),
            },
        ]

    def close(self, identity: str) -> None:
        """The unit is done: its entries are all written."""
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(self.PARTITION, f"open|{identity}")

    def watermark(self) -> int:
        """Every entry stamped before this is written, and none will be written after."""
        now = now_ms()
        mark = now - self.settle_ms
        for row in self.table.query_entities(
            "PartitionKey eq @p and RowKey gt @low and RowKey lt @high",
            parameters={"p": self.PARTITION, "low": "open|", "high": "open}"},
            select=["at_ms", "expires_ms"],
        ):
            if _ms(row, "expires_ms") > now:
                mark = min(mark, _ms(row, "at_ms"))
        return mark


@dataclass(frozen=True)
class Scan:
    """One page of a stream: the entries read, where the next page starts, and whether more
    entries were already there (False: the reader is at the watermark)."""

    entries: list[TableEntity]
    position: str
    more: bool


class Feed:
    """The feed table: streams, stamps and markers."""

    def __init__(self, table: TableClient, *, settle_s: float):
        self.table = table
        self.stamps = Stamps(table, settle_ms=int(settle_s * 1000))

    def write(self, entities: Iterable[Mapping[str, Any]]) -> None:
        upsert_all(self.table, entities)

    def scan(
        self, stream: Stream, position: str, limit: int, *, watermark: int | None = None
    ) -> Scan:
        """Up to `limit` entries after `position`, older than the watermark (read now unless
        given: a page of several scans reads it once), in order."""
        if watermark is None:
            watermark = self.stamps.watermark()
        high = start_position(watermark)
        if position >= high:
            return Scan([], position, False)
        pages = self.table.query_entities(
            "PartitionKey ge @plo and PartitionKey le @phi and RowKey gt @after "
            "and RowKey lt @high",
            parameters={
                "plo": partition(stream, _stamp_ms(position)),
                "phi": partition(stream, watermark),
                "after": position,
                "high": high,
            },
            results_per_page=limit,
        ).by_page()
        entries: list[TableEntity] = []
        more = False
        for _ in range(MAX_REQUESTS):
            page = next(pages, None)
            entries.extend(page or [])
            more = bool(getattr(pages, "continuation_token", None))
            if not more or len(entries) >= limit:
                break
        if len(entries) > limit:
            entries, more = entries[:limit], True
        if not more:
            return Scan(entries, caught_up(watermark), False)
        # With nothing read (Azure may answer empty pages), the next page starts here again:
        # nothing was skipped, since nothing was read.
        return Scan(entries, str(entries[-1]["RowKey"]) if entries else position, True)


class FeedWriter:
    """The feed entries of one unit of work, under one stamp taken when first needed."""

    def __init__(self, feed: Feed, identity: str):
        self.feed = feed
        self.identity = identity
        self._stamp: Stamp | None = None

    @property
    def stamp(self) -> Stamp:
        if self._stamp is None:
            self._stamp = self.feed.stamps.take(self.identity)
        return self._stamp

    def entry(self, stream: Stream, suffix: str, values: Mapping[str, Any]) -> dict[str, Any]:
        return {**values, **self.stamp.keys(stream, suffix)}

    def write(self, stream: Stream, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Entries (key suffix, properties) of one stream, 100 to a transaction."""
        self.feed.write(self.entry(stream, suffix, values) for suffix, values in items)

    def close(self) -> None:
        if self._stamp is not None:
            self.feed.stamps.close(self.identity)
