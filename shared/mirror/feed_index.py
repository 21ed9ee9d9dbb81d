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

Replays. A unit that runs again after its marker was closed or expired (a batch replayed from
the poison queue, a redelivery after a finished run) may not write behind readers that have
passed its stamp: it takes a new stamp, and keeps the earlier ones, so an event (an activity, a
deletion) that one of them already holds (written before the unit failed, and maybe served) is
not written again. A synced-record entry is written again all the same: the replay writes the
row with its own `synced_at`, and a list serves an entry only while it names the row's latest
sync (shared.mirror.record_walks), so the earlier entry is passed over and this one is served.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableEntity,
    TableErrorCode,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from shared.errors import AcctsyncError
from shared.mirror.shards import WINDOW_MS, Layout, hour_of, old_partition, suffix_of
from shared.mirror.stream_range import ParkedRanges, ShardPaging, StreamRange
from shared.mirror.transactions import submit_transaction
from shared.mirror.writes import delete_all, upsert_all
from shared.storage import entity_or_none
from shared.times import KEY_MS_BOUND

# Clock skew between instances (NTP keeps Azure's far under this) is allowed for on top of
# twice the longest a stamp may take to be taken.
CLOCK_SKEW_MS = 1_000
OPEN_FOR_MS = 35 * 60_000
# Service pages one API page may read (a page of a filtered walk may come back short).
MAX_REQUESTS = 4
# Entities a finished cycle deletes past the feeds' retention, at most (a backlog drains over
# the next cycles: a day of cycles every 5 minutes removes 5.7 million).
PRUNE_LIMIT = 20_000
# Runs of one unit at the same time (two requests completing one local edit) that claim its
# stamp in turn: each lost race means another run claimed one, so a few attempts suffice.
TAKE_ATTEMPTS = 5
_LOST_RACE = (TableErrorCode.ENTITY_ALREADY_EXISTS, TableErrorCode.UPDATE_CONDITION_NOT_SATISFIED)


# Where the retention records the oldest time the streams still hold whole (see kept_from).
KEPT_PARTITION, KEPT_ROW = "retention", "kept"
# Where the feed records from which hour on its entries are sharded (see Feed.layout).
LAYOUT_PARTITION, LAYOUT_ROW = "layout", "sharded"


class RangeGone(AcctsyncError):
    """A walk from a time whose entries the retention has removed (part of them, maybe)."""

    def __init__(self, kept_from_ms: int):
        self.kept_from = datetime.fromtimestamp(kept_from_ms / 1000, UTC)
        super().__init__(
            f"the change index holds every entry from {self.kept_from} on only: start from "
            "then or later, or read the whole table without a start time"
        )


class Stream(StrEnum):
    ACTIVITIES = "act"
    DELETED = "del"
    SYNCED_ACCOUNTS = "syncacc"
    SYNCED_CONTACTS = "synccon"


# Streams of the records synced, each entry naming one sync of a row (its `synced_at`).
SYNCS = frozenset({Stream.SYNCED_ACCOUNTS, Stream.SYNCED_CONTACTS})


def now_ms() -> int:
    return int(time.time() * 1000)


def partition(stream: Stream, at_ms: int) -> str:
    """The hour's partition in the layout before sharding (every shard's name starts with it,
    so a range of these names covers both layouts' hours)."""
    return old_partition(stream.value, hour_of(at_ms))


def start_position(at_ms: int) -> str:
    """The position just before everything stamped at or after `at_ms` (clamped to 13 digits:
    a longer position would compare as an earlier one)."""
    return f"{min(max(at_ms, 0), KEY_MS_BOUND):013d}"


def caught_up(watermark_ms: int) -> str:
    """The position after everything stamped before `watermark_ms` ('~' sorts after any
    character of an entry's key)."""
    return f"{watermark_ms - 1:013d}|~"


def int64(value: int) -> EntityProperty:
    """A millisecond count as Table Storage keeps it whole (Int64, not Int32)."""
    return EntityProperty(value, EdmType.INT64)


def ms_of(row: Mapping[str, Any], name: str) -> int:
    value = row[name]
    return int(value.value if isinstance(value, EntityProperty) else value)


def stamp_ms(position: str) -> int:
    """The stamp a position is at (its first 13 digits)."""
    return int(position[:13])


def _earlier_of(unit: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(int(at) for at in str(unit.get("earlier") or "").split(",") if at)


def _stamp_of(identity: str, unit: Mapping[str, Any]) -> Stamp:
    return Stamp(identity, ms_of(unit, "at_ms"), _earlier_of(unit))


def _unchanged_since(row: TableEntity) -> dict[str, Any]:
    return {
        "mode": UpdateMode.REPLACE,
        "etag": row.metadata["etag"],
        "match_condition": MatchConditions.IfNotModified,
    }


@dataclass(frozen=True)
class Stamp:
    identity: str
    at_ms: int
    earlier: tuple[int, ...] = ()  # the unit's stamps before a replay, oldest first


def row_key(at_ms: int, suffix: str) -> str:
    return f"{at_ms:013d}|{suffix}"


def old_layout_keys(stream: Stream, at_ms: int, suffix: str) -> dict[str, str]:
    """An entry's keys as the feed wrote them before its hours were sharded."""
    return {"PartitionKey": partition(stream, at_ms), "RowKey": row_key(at_ms, suffix)}


class Stamps:
    """Stamps and their open markers: one partition, `unit|<identity>` and `open|<identity>`,
    so a stamp and its marker are created in one transaction."""

    PARTITION = "stamps"

    def __init__(self, table: TableClient, *, settle_ms: int):
        self.table = table
        self.settle_ms = settle_ms
        self.marker_limit_ms = max(100, (settle_ms - CLOCK_SKEW_MS) // 2)

    def take(self, identity: str) -> Stamp:
        """The unit's stamp: the open one it took before, or a new one, open. A unit's first
        run (every batch's) claims one straight away: reading first would only find nothing,
        and the claim itself fails when the unit already has a stamp (then it is read)."""
        stamp = self._claim(identity, None)
        if stamp is not None:
            return stamp
        for _ in range(TAKE_ATTEMPTS):
            unit, is_open = self._known(identity)
            if unit is not None and is_open:
                return _stamp_of(identity, unit)
            stamp = self._claim(identity, unit)
            if stamp is not None:
                return stamp
        raise RuntimeError(f"the feed stamp of {identity} kept changing; retry later")

    def _claim(self, identity: str, unit: TableEntity | None) -> Stamp | None:
        """A new open stamp after the unit's `unit` row (None: its first); None when another
        run of the same unit claimed one first."""
        earlier = () if unit is None else (*_earlier_of(unit), ms_of(unit, "at_ms"))
        started = now_ms()
        rows = self._rows(identity, started, earlier)
        claim: tuple[TransactionOperation, dict[str, Any], dict[str, Any]]
        if unit is None:
            claim = (TransactionOperation.CREATE, rows[0], {})
        else:  # only if no other delivery replaced it meanwhile
            claim = (TransactionOperation.UPDATE, rows[0], _unchanged_since(unit))
        try:
            submit_transaction(
                self.table,
                [claim, (TransactionOperation.UPSERT, rows[1], {"mode": UpdateMode.REPLACE})],
            )
        except (ResourceExistsError, ResourceModifiedError, TableTransactionError) as error:
            if getattr(error, "error_code", None) not in _LOST_RACE and isinstance(
                error, TableTransactionError
            ):
                raise
            # Another run of the same unit took one just now: shared while it is open; once
            # closed (that run finished), it is an earlier stamp of a new one.
            return None
        # Too slow: a reader may have passed `started` before the marker was visible, so the
        # stamp is taken again, later (nothing was written under the first one yet).
        while now_ms() - started > self.marker_limit_ms:
            started = now_ms()
            rows = self._rows(identity, started, earlier)
            self.table.submit_transaction(
                [(TransactionOperation.UPSERT, row, {"mode": UpdateMode.REPLACE}) for row in rows]
            )
        return Stamp(identity, started, earlier)

    def _known(self, identity: str) -> tuple[TableEntity | None, bool]:
        """The unit's stamp row, if it has one, and whether its marker still holds readers."""
        unit = self._row(f"unit|{identity}")
        if unit is None:  # gone since the claim failed (the retention): one read, not two
            return None, False
        marker = self._row(f"open|{identity}")
        is_open = (
            marker is not None
            and ms_of(marker, "at_ms") == ms_of(unit, "at_ms")
            and ms_of(marker, "expires_ms") > now_ms()
        )
        return unit, is_open

    def _row(self, row_key: str) -> TableEntity | None:
        return entity_or_none(self.table, self.PARTITION, row_key)

    def _rows(self, identity: str, at_ms: int, earlier: tuple[int, ...]) -> list[dict[str, Any]]:
        unit: dict[str, Any] = {
            "PartitionKey": self.PARTITION,
            "RowKey": f"unit|{identity}",
            "at_ms": int64(at_ms),
        }
        if earlier:
            unit["earlier"] = ",".join(map(str, earlier))
        marker = {
            "PartitionKey": self.PARTITION,
            "RowKey": f"open|{identity}",
            "at_ms": int64(at_ms),
            "expires_ms": int64(at_ms + OPEN_FOR_MS),
        }
        return [unit, marker]

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
            if ms_of(row, "expires_ms") > now:
                mark = min(mark, ms_of(row, "at_ms"))
        return mark


@dataclass(frozen=True)
class Scan:
    """One page of a stream: the entries read, where the next page starts, and whether more
    entries were already there (False: the reader is at the watermark)."""

    entries: list[TableEntity]
    position: str
    more: bool
    watermark: int  # read up to: the next page's token carries it

    def token_position(self) -> dict[str, Any]:
        return {"after": self.position, "wm": self.watermark}


class FeedLayout:
    """The feed's `layout|sharded` row: from which hour on its entries are sharded. Written
    once, by the first writer of a sharded entry, and never changed, so a process keeps it
    once read (until it exists, readers ask on every page: a writer may create it any time)."""

    def __init__(self, table: TableClient):
        self.table = table
        self._known: Layout | None = None

    def read(self) -> Layout:
        if self._known is None:
            row = entity_or_none(self.table, LAYOUT_PARTITION, LAYOUT_ROW)
            if row is None:
                return Layout()
            self._known = Layout(ms_of(row, "from_hour"), bool(row.get("old_in_first_hour")))
        return self._known

    def for_writing(self) -> Layout:
        """The layout, created first when it does not exist: sharded from the current hour,
        which the old code may have written in already (then readers read it both ways)."""
        layout = self.read()
        if layout.sharded_from is not None:
            return layout
        hour = hour_of(now_ms())
        row = {
            "PartitionKey": LAYOUT_PARTITION,
            "RowKey": LAYOUT_ROW,
            "from_hour": int64(hour),
            "old_in_first_hour": any(self._old_entries_in(stream, hour) for stream in Stream),
        }
        with contextlib.suppress(ResourceExistsError):  # another writer's is the one
            self.table.create_entity(row)
        return self.read()

    def _old_entries_in(self, stream: Stream, hour: int) -> bool:
        found = self.table.query_entities(
            "PartitionKey eq @p",
            parameters={"p": old_partition(stream.value, hour)},
            select=["RowKey"],
            results_per_page=1,
        )
        return next(iter(found), None) is not None


class Feed:
    """The feed table: streams, stamps and markers."""

    def __init__(self, table: TableClient, *, settle_s: float):
        self.table = table
        self.stamps = Stamps(table, settle_ms=int(settle_s * 1000))
        self.layout = FeedLayout(table)
        self.parked = ParkedRanges()

    def write(self, entities: Iterable[Mapping[str, Any]]) -> None:
        """Entries made by `keys`, grouped by partition, 100 to a transaction."""
        upsert_all(self.table, entities)

    def keys(self, stream: Stream, at_ms: int, suffix: str) -> dict[str, str]:
        """Where an entry stamped `at_ms` that indexes `suffix` is written."""
        partition_key = self.layout.for_writing().partition_of(stream.value, at_ms, suffix)
        return {"PartitionKey": partition_key, "RowKey": row_key(at_ms, suffix)}

    def range(
        self, stream: Stream, after: str, watermark: int, *, paging: ShardPaging, skip: int = 0
    ) -> StreamRange:
        """The stream's entries after `after` and stamped before `watermark`, in order, read
        as they are used: the range a page parked there (see `park`), or a new one."""
        layout = self.layout.read()
        parked = self.parked.take((stream, after, skip, watermark, layout))
        if parked is not None:
            return parked
        high = start_position(watermark)
        return StreamRange(
            self.table,
            layout,
            stream.value,
            after,
            high=high,
            # Nothing to read past the watermark: no hour, no request.
            last_hour=hour_of(max(watermark - 1, 0)) if after < high else -1,
            paging=paging,
        )

    def remove_older_than(self, before_ms: int, *, limit: int = PRUNE_LIMIT) -> int:
        """Delete every stream's hours wholly before `before_ms`, oldest first, and the stamps
        taken before it; at most `limit` entities a call (the next cycle goes on)."""
        removed = 0
        for stream in Stream:
            if removed >= limit:
                break
            rows = iter(
                self.table.query_entities(
                    "PartitionKey ge @low and PartitionKey lt @high",
                    parameters={"low": f"{stream.value}|", "high": partition(stream, before_ms)},
                    select=["PartitionKey", "RowKey"],
                    results_per_page=1000,
                )
            )
            first = next(rows, None)
            if first is None:
                continue
            if removed == 0:
                # Recorded before anything goes: a walk from before it would miss entries.
                self._keep_from(before_ms // WINDOW_MS * WINDOW_MS)
            removed += delete_all(
                self.table, itertools.islice(itertools.chain([first], rows), limit - removed)
            )
        if not 0 < removed < limit:
            # Nothing aged out (most cycles), or more is left for the next call: the stamps
            # partition is read only once the entries of an hour are gone. (A stamp is taken
            # when its unit writes its first entry, so old stamps come with old entries.)
            return removed
        # A unit's stamp goes with its entries: a replay this late takes a new stamp, and
        # what an older one wrote is gone anyway.
        stamps = self.table.query_entities(
            "PartitionKey eq @p and at_ms lt @before",
            parameters={"p": Stamps.PARTITION, "before": before_ms},
            select=["PartitionKey", "RowKey"],
            results_per_page=1000,
        )
        return removed + delete_all(self.table, itertools.islice(stamps, limit - removed))

    def kept_from(self) -> int:
        """The oldest time (ms) from which every stream still holds all of its entries: the
        start of the oldest hour the retention kept when it last removed any (0: it never did)."""
        row = entity_or_none(self.table, KEPT_PARTITION, KEPT_ROW)
        return 0 if row is None else ms_of(row, "from_ms")

    def require_kept(self, at_ms: int) -> None:
        """RangeGone when entries stamped at or after `at_ms` may have been removed."""
        kept_from = self.kept_from()
        if at_ms < kept_from:
            raise RangeGone(kept_from)

    def _keep_from(self, from_ms: int) -> None:
        if from_ms > self.kept_from():  # cycles never overlap: no other pruner races this
            row = {"PartitionKey": KEPT_PARTITION, "RowKey": KEPT_ROW, "from_ms": int64(from_ms)}
            self.table.upsert_entity(row, mode=UpdateMode.REPLACE)

    def watermark_for(self, position: Mapping[str, Any]) -> tuple[int, bool]:
        """The watermark a page reads up to, and whether it is the one its token carried.
        Nothing below a watermark ever changes, so a reader still below the one it was given
        reads on to it without asking the stamps again (one request less per page)."""
        carried = position.get("wm")
        if carried is not None and str(position["after"]) < start_position(int(carried)):
            return int(carried), True
        return self.stamps.watermark(), False

    def page(self, stream: Stream, position: Mapping[str, Any], limit: int) -> Scan:
        """A page from a token's position: up to the watermark the token carries, then on to
        a fresh one while the page has room."""
        watermark, carried = self.watermark_for(position)
        scan = self.scan(stream, str(position["after"]), limit, watermark=watermark, keep=True)
        if carried and not scan.more and len(scan.entries) < limit:
            rest = self.scan(stream, scan.position, limit - len(scan.entries), keep=True)
            scan = Scan(scan.entries + rest.entries, rest.position, rest.more, rest.watermark)
        return scan

    def park(
        self, stream: Stream, entries: StreamRange, after: str, watermark: int, skip: int = 0
    ) -> None:
        """Keep a range a page stopped reading in at (`after`, `skip`) for the next page (its
        token's position): `range` hands it back."""
        self.parked.park((stream, after, skip, watermark, entries.layout), entries)

    def scan(
        self,
        stream: Stream,
        position: str,
        limit: int,
        *,
        watermark: int | None = None,
        keep: bool = False,
    ) -> Scan:
        """Up to `limit` entries after `position`, older than the watermark (read now unless
        given: a page of several scans reads it once), in order. `keep`: the range is parked
        for the next page (a token that carries the watermark comes back to it)."""
        if watermark is None:
            watermark = self.stamps.watermark()
        if position >= start_position(watermark):
            return Scan([], position, False, watermark)
        entries = self.range(stream, position, watermark, paging=ShardPaging.for_entries(limit))
        read = list(itertools.islice(entries, limit))
        if not entries.more:
            return Scan(read, caught_up(watermark), False, watermark)
        if keep:
            self.park(stream, entries, entries.position, watermark)
        return Scan(read, entries.position, True, watermark)


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
        return {**values, **self.feed.keys(stream, self.stamp.at_ms, suffix)}

    def write(self, stream: Stream, items: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Entries (key suffix, properties) of one stream, 100 to a transaction."""
        self.write_entries([self.entry(stream, suffix, values) for suffix, values in items])

    def write_entries(self, entries: list[dict[str, Any]]) -> None:
        """Entries made by `entry`; on a replay, the events an earlier stamp holds are left
        out."""
        if entries and self.stamp.earlier:
            entries = [entry for entry in entries if not self._written_before(entry)]
        self.feed.write(entries)

    def _written_before(self, entry: Mapping[str, Any]) -> bool:
        stream = Stream(str(entry["PartitionKey"]).partition("|")[0])
        if stream in SYNCS:
            return False  # the replay's sync is the row's latest: see "Replays" above
        suffix = suffix_of(str(entry["RowKey"]))
        layout = self.feed.layout.for_writing()
        for at_ms in self.stamp.earlier:
            for partition_key in layout.partitions_of(stream.value, at_ms, suffix):
                try:
                    self.feed.table.get_entity(
                        partition_key, row_key(at_ms, suffix), select=["RowKey"]
                    )
                except ResourceNotFoundError:
                    continue
                return True
        return False

    def close(self) -> None:
        if self._stamp is not None:
            self.feed.stamps.close(self.identity)
