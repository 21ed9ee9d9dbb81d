"""One stream's entries after a position and before a watermark, in RowKey order, read
lazily across hours and shards (the layout of shared.mirror.shards).

An hour written the old way is one partition; a run of such hours is one range query, as it
always was. A sharded hour is the merge of its shards' ranges, each asked for a page only when
the merge needs its next entry, the first pages side by side. Hours with nothing after the
position are passed over with one small query (the first partition holding anything), so a
walk from days ago does not ask every shard of every empty hour, and a caught-up reader asks
one query, not one per shard.

An hour read from its start (every hour after the position's) is first asked with a few
queries side by side, each over a run of its partitions, which the service answers one after
the other: an hour of a few thousand entries (a delta's, a poll's) comes in a round of 4
requests, not in rounds of one request per shard; a larger one goes on shard by shard from
where those queries stopped (see `HourAtOnce`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableClient, TableEntity

from shared.mirror.service_pages import let_go, service_page
from shared.mirror.shards import (
    SHARDS,
    Layout,
    Merge,
    PageRequest,
    hour_of,
    hour_of_partition,
    old_partition,
)
from shared.mirror.writes import run_parallel

# The service answers at most 1,000 entities a request.
MOST_PER_REQUEST = 1000
# A shard's first page holds at least this many entries: a guess from the page before (a
# fan-out's few large entries) may be far too small for this one (small accounts' entries),
# and each round of requests costs more than a few entries more.
LEAST_PER_REQUEST = 8
# Shards asked for a page at once: the requests are independent, and the client's decoding of
# one overlaps the service's answering of another.
PARALLEL_SHARDS = 16
# How much larger each next page of a shard is than its last: a guess too small (a page of a
# fan-out's large entries followed by small accounts' entries) costs two or three rounds of
# requests, not five.
GROWTH = 4
_RANGE = "RowKey gt @after and RowKey lt @high"
_SHARD_RANGE = f"PartitionKey eq @p and {_RANGE}"
# Ranges a process keeps for the pages that follow them, and for how long: a reader asks for
# its next page at once or not for a while.
PARKED_RANGES = 16
PARKED_FOR_S = 60.0
# An hour read from its start is asked with HOUR_QUERIES queries side by side, each over a run
# of its shards (the client decodes one answer while the service prepares the next); each goes
# on while the shards it has answered say the whole hour holds at most HOUR_AT_ONCE entries.
# So at most a page of each is held at once (4,000 entries, as an export's 16 shards of 250),
# and a round of them costs 4 requests where a round of shard requests costs 16 (Azurite
# scans its whole table for each request; Azure answers each apart).
HOUR_QUERIES = 4
HOUR_AT_ONCE = 2_000


@dataclass(frozen=True)
class ShardPaging:
    """How many entries a shard's range asks for: `first` at first, GROWTH times as many each
    time the merge comes back for more (a guess too small costs a few requests, not one each);
    and which of their properties (None: all)."""

    first: int
    most: int = MOST_PER_REQUEST
    select: tuple[str, ...] | None = None

    def asking(self, select: tuple[str, ...]) -> ShardPaging:
        """The same paging, asking only for `select`."""
        return ShardPaging(self.first, self.most, select)

    @classmethod
    def for_entries(cls, entries: int, *, most: int = MOST_PER_REQUEST) -> ShardPaging:
        """Paging for about `entries` entries spread over the shards (a quarter more, since a
        hash spreads them only about evenly), LEAST_PER_REQUEST at least."""
        return cls(min(most, max(LEAST_PER_REQUEST, math.ceil(entries * 1.25 / SHARDS) + 2)), most)


class RangePager:
    """The pages of one range query, each asked when `__call__`ed, growing as they go."""

    def __init__(
        self, table: TableClient, query: str, parameters: dict[str, Any], paging: ShardPaging
    ):
        self.table, self.query, self.parameters = table, query, parameters
        self.size, self.most = paging.first, max(paging.first, paging.most)
        self.select = None if paging.select is None else list(paging.select)
        self._continuation: Any = None

    def __call__(self) -> tuple[Sequence[TableEntity], bool]:
        page, self._continuation = service_page(
            self.table.query_entities(
                self.query,
                parameters=self.parameters,
                results_per_page=self.size,
                select=self.select,
            ).by_page(continuation_token=self._continuation)
        )
        self.size = min(self.size * GROWTH, self.most)
        return page, self._continuation is not None


class Prefetched:
    """A range whose first entries were read already (by its hour's one query): those first,
    then `rest` page by page (None: the range was read to its end)."""

    def __init__(self, first: list[TableEntity], rest: RangePager | None):
        self._first, self.rest = first, rest

    def __call__(self) -> tuple[Sequence[TableEntity], bool]:
        first, self._first = self._first, []
        if first or self.rest is None:
            return first, self.rest is not None
        return self.rest()


class HourAtOnce:
    """A run of a sharded hour's partitions from the hour's start, asked with one query (the
    service answers them in key order: a partition is complete once a later one shows up).
    The query goes on while the entries read per partition answered say the hour's
    `hour_partitions` hold at most HOUR_AT_ONCE; then each partition not read to its end goes
    on with its own range from its last entry read, as StreamRange reads any hour."""

    def __init__(
        self,
        table: TableClient,
        partitions: list[str],
        parameters: dict[str, Any],
        *,
        hour_partitions: int,
    ):
        self.table, self.partitions, self.parameters = table, partitions, parameters
        self.hour_partitions = hour_partitions
        self.found: dict[str, list[TableEntity]] = {p: [] for p in partitions}
        self.covered = 0  # partitions the query has reached (the last of them maybe not whole)
        self.ended = False  # whether the query answered to the end

    def read(self, paging: ShardPaging) -> list[Prefetched]:
        """Every partition's range, in the order of `partitions`, its first entries read."""
        order = {partition: index for index, partition in enumerate(self.partitions)}
        pages = self.table.query_entities(
            f"PartitionKey ge @plo and PartitionKey le @phi and {_RANGE}",
            parameters={**self.parameters, "plo": self.partitions[0], "phi": self.partitions[-1]},
            results_per_page=MOST_PER_REQUEST,
            select=None if paging.select is None else list(paging.select),
        ).by_page()
        read = 0
        while not self.ended and self._small_so_far(read):
            for entry in next(pages, []):
                partition = str(entry["PartitionKey"])
                if partition in order:  # a partition of the old layout not read in this hour
                    self.found[partition].append(entry)
                    self.covered = max(self.covered, order[partition] + 1)
                    read += 1
            self.ended = getattr(pages, "continuation_token", None) is None
        let_go(pages)  # its last answer (up to 1,000 entries) is not left to the collector
        return [self._range(index, paging) for index in range(len(self.partitions))]

    def _small_so_far(self, read: int) -> bool:
        """Whether the partitions answered so far say the hour holds at most HOUR_AT_ONCE
        (an empty answer says nothing: Azure may end a page at a partition's end)."""
        return read * self.hour_partitions <= HOUR_AT_ONCE * max(self.covered, 1)

    def _range(self, index: int, paging: ShardPaging) -> Prefetched:
        partition = self.partitions[index]
        first = self.found[partition]
        if self.ended or index + 1 < self.covered:
            return Prefetched(first, None)
        after = str(first[-1]["RowKey"]) if first else self.parameters["after"]
        parameters = {**self.parameters, "after": after, "p": partition}
        return Prefetched(first, RangePager(self.table, _SHARD_RANGE, parameters, paging))


def read_together(
    requests: list[PageRequest[TableEntity]],
) -> list[tuple[Sequence[TableEntity], bool]]:
    return run_parallel(lambda request: request(), requests, width=PARALLEL_SHARDS)


class StreamRange:
    """Entries of `stream` with a RowKey after `after` and stamped before `watermark`."""

    def __init__(
        self,
        table: TableClient,
        layout: Layout,
        stream: str,
        after: str,
        *,
        high: str,
        last_hour: int,
        paging: ShardPaging,
    ):
        self.table, self.layout, self.stream = table, layout, stream
        self.parameters = {"after": after, "high": high}
        self.paging = paging
        self._first_hour = self._next_hour = hour_of(int(after[:13]))  # the position's
        self._last_hour = last_hour
        self._current: Merge[TableEntity] | None = None
        self._again: TableEntity | None = None  # served first (a page ended inside it)
        self.position = after  # the RowKey of the last entry served

    def __iter__(self) -> Iterator[TableEntity]:
        return self

    def serve_again(self, entry: TableEntity) -> None:
        """Serve `entry` (the last one served) first again: a page ended within it."""
        self._again = entry

    def __next__(self) -> TableEntity:
        again = self._again
        if again is not None:
            self._again = None
            return again
        while True:
            entry = next(self._current, None) if self._current is not None else None
            if entry is not None:
                self.position = str(entry["RowKey"])
                return entry
            if not self._open_next():
                raise StopIteration

    @property
    def more(self) -> bool:
        """Whether entries may be left (known without a request: True may find none)."""
        current = self._current is not None and self._current.pending
        return current or self._again is not None or self._next_hour <= self._last_hour

    def _open_next(self) -> bool:
        """Start reading the next hours that may hold entries; False when none are left."""
        # One small query first, also for the last hour: a reader that is caught up (a feed
        # polled every minute) finds nothing with it, not with a query of every shard; and a
        # walk from before the upgrade of a mirror whose old hours are gone (or that never had
        # any) asks nothing of them.
        found = self._first_hour_with_entries(self._next_hour)
        if found is None:
            self._next_hour = self._last_hour + 1
            self._current = None
            return False
        hour = found
        if not self.layout.is_sharded(hour):
            sharded_from = self.layout.sharded_from
            last = (
                self._last_hour if sharded_from is None else min(self._last_hour, sharded_from - 1)
            )
            self._current = self._merge([self._old_hours(hour, last)])
            self._next_hour = last + 1
            return True
        partitions = self.layout.hour_partitions(self.stream, hour)
        ranges: Sequence[PageRequest[TableEntity]]
        if hour > self._first_hour:  # the whole hour is after the position
            ranges = self._hour_at_once(partitions)
        else:
            ranges = [self._shard(p) for p in partitions]
        self._current = self._merge(ranges)
        self._next_hour = hour + 1
        return True

    def _hour_at_once(self, partitions: list[str]) -> list[Prefetched]:
        """Every partition's range of an hour read from its start, its first entries read by
        HOUR_QUERIES queries side by side (see HourAtOnce)."""
        size = math.ceil(len(partitions) / HOUR_QUERIES)
        runs = [partitions[start : start + size] for start in range(0, len(partitions), size)]

        def read(run: list[str]) -> list[Prefetched]:
            hour = HourAtOnce(self.table, run, self.parameters, hour_partitions=len(partitions))
            return hour.read(self.paging)

        return [found for run in run_parallel(read, runs, width=HOUR_QUERIES) for found in run]

    def _merge(self, ranges: Sequence[PageRequest[TableEntity]]) -> Merge[TableEntity]:
        return Merge(ranges, key=lambda entry: str(entry["RowKey"]), together=read_together)

    def _shard(self, partition: str) -> RangePager:
        parameters = {**self.parameters, "p": partition}
        return RangePager(self.table, _SHARD_RANGE, parameters, self.paging)

    def _old_hours(self, first: int, last: int) -> RangePager:
        """Hours written the old way, one partition each: one range query over them all."""
        query = f"PartitionKey ge @plo and PartitionKey le @phi and {_RANGE}"
        parameters = {
            **self.parameters,
            "plo": old_partition(self.stream, first),
            "phi": old_partition(self.stream, last),
        }
        first = min(self.paging.first * SHARDS, self.paging.most)
        paging = ShardPaging(first, self.paging.most, self.paging.select)
        return RangePager(self.table, query, parameters, paging)

    def _first_hour_with_entries(self, first: int) -> int | None:
        """The first hour from `first` on with an entry in the range (one small query; None
        also when no hour is left)."""
        if first > self._last_hour:
            return None
        found = self.table.query_entities(
            f"PartitionKey ge @plo and PartitionKey le @phi and {_RANGE}",
            parameters={
                **self.parameters,
                "plo": old_partition(self.stream, first),
                "phi": old_partition(self.stream, self._last_hour) + "|~",
            },
            select=["PartitionKey"],
            results_per_page=1,
        )
        entry = next(iter(found), None)
        return None if entry is None else hour_of_partition(str(entry["PartitionKey"]))


class ParkedRanges:
    """Ranges a page stopped reading in, kept by this process (PARKED_FOR_S at most) for the
    page that follows it: a reader's next page goes on with the same shard reads, their
    buffers and continuations, instead of asking every shard again. Nothing below a watermark
    ever changes, so a range parked at a position reads on exactly as a new one from there
    would; a page served by another process (or after the wait) just starts a new one."""

    def __init__(self, capacity: int = PARKED_RANGES, keep_s: float = PARKED_FOR_S):
        self.capacity, self.keep_s = capacity, keep_s
        self._ranges: OrderedDict[Hashable, tuple[float, StreamRange]] = OrderedDict()
        self._lock = threading.Lock()

    def park(self, key: Hashable, entries: StreamRange) -> None:
        with self._lock:
            self._ranges[key] = (time.monotonic(), entries)
            self._ranges.move_to_end(key)
            while len(self._ranges) > self.capacity:
                self._ranges.popitem(last=False)

    def take(self, key: Hashable) -> StreamRange | None:
        """The range parked under `key`, once (two requests with one token: one gets it)."""
        with self._lock:
            parked = self._ranges.pop(key, None)
        if parked is None or time.monotonic() - parked[0] > self.keep_s:
            return None
        return parked[1]
