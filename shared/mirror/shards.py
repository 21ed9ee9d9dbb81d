"""Where a feed entry lives, and how the shards of an hour are read back in key order.

A stream's entries of one hour were one partition, `<stream>|<hour>`: a first load's synced
entries and a fan-out's activity entries all went to it, and Table Storage serves one
partition at about 2,000 entities a second (the account at 20,000). So each hour is split
into SHARDS partitions, `<stream>|<hour>|<shard>`, the shard a hash of the record the entry
indexes (`shard_of`): one entry always lands in the same shard, and the writes of a load
spread evenly. A RowKey still starts with its stamp, so every shard of an hour is a range
in stamp order and the hour reads back as their merge (`Merge`), each shard paged lazily.

The layout changed under a running mirror: hours written before the upgrade stay in one
partition each. A `Layout` row says from which hour on entries are sharded (see
shared.mirror.feed_index); older hours are read the old way.
"""

from __future__ import annotations

import heapq
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

SHARDS = 16
# Streams whose entries name their account first (the activity feed's entries: one change of
# an account's field, for a chunk of its contacts).
ACCOUNT_FIRST = frozenset({"act"})
WINDOW_MS = 3_600_000  # one hour of a stream: one partition before, SHARDS partitions now

T = TypeVar("T")
# One request of a shard's range: the entries it answered and whether the range goes on.
PageRequest = Callable[[], tuple[Sequence[T], bool]]
# The first pages of several ranges, asked together (side by side, if the caller likes).
FirstPages = Callable[[list[PageRequest[T]]], list[tuple[Sequence[T], bool]]]


def hour_of(at_ms: int) -> int:
    return at_ms // WINDOW_MS


def suffix_of(row_key: str) -> str:
    """What an entry indexes: its RowKey after the `<stamp ms>|`."""
    return row_key.partition("|")[2]


def shard_of(stream: str, suffix: str) -> int:
    """The shard of an entry: a hash of the record it indexes (the same entry, the same shard).

    That record is the id at the end of the suffix (a synced or deleted record), or for an
    activity entry the account at its start. The hash is the mirror's own (crc32, and 16
    divides its 64 buckets), so the entries of a batch, which holds the records of one mirror
    partition, go to one shard (one transaction, as before the shards), and a load, whose
    batches go round the partitions, spreads over all 16."""
    record = suffix.partition("|")[0] if stream in ACCOUNT_FIRST else suffix.rpartition("|")[2]
    return record_shard(record)


def record_shard(record_id: str) -> int:
    """A record's shard: its mirror bucket modulo SHARDS (the search index's too)."""
    return zlib.crc32(record_id.encode()) % SHARDS


def old_partition(stream: str, hour: int) -> str:
    """An hour's partition in the layout before sharding (also the prefix of its shards')."""
    return f"{stream}|{hour:09d}"


def shard_partition(stream: str, hour: int, shard: int) -> str:
    return f"{stream}|{hour:09d}|{shard:02d}"


def hour_of_partition(partition_key: str) -> int:
    """The hour of either layout's partition name."""
    return int(partition_key.split("|")[1])


@dataclass(frozen=True)
class Layout:
    """From which hour on a feed's entries are sharded (None: none is yet), and whether that
    first hour also holds entries written the old way (written before the upgrade)."""

    sharded_from: int | None = None
    old_in_first_hour: bool = False

    def is_sharded(self, hour: int) -> bool:
        return self.sharded_from is not None and hour >= self.sharded_from

    def partition_of(self, stream: str, at_ms: int, suffix: str) -> str:
        """Where an entry stamped `at_ms` is written."""
        hour = hour_of(at_ms)
        if not self.is_sharded(hour):
            return old_partition(stream, hour)
        return shard_partition(stream, hour, shard_of(stream, suffix))

    def partitions_of(self, stream: str, at_ms: int, suffix: str) -> list[str]:
        """Every partition an entry stamped `at_ms` may be in (both at the upgrade's hour)."""
        written = self.partition_of(stream, at_ms, suffix)
        if self.is_sharded(hour_of(at_ms)) and self.mixed(hour_of(at_ms)):
            return [old_partition(stream, hour_of(at_ms)), written]
        return [written]

    def mixed(self, hour: int) -> bool:
        """Whether an hour holds both layouts (the hour of the upgrade, when the old code
        wrote in it first)."""
        return self.old_in_first_hour and hour == self.sharded_from

    def hour_partitions(self, stream: str, hour: int) -> list[str]:
        """The partitions a reader merges for one sharded hour."""
        shards = [shard_partition(stream, hour, shard) for shard in range(SHARDS)]
        return [old_partition(stream, hour), *shards] if self.mixed(hour) else shards


@dataclass
class _Source(Generic[T]):
    request: PageRequest[T]
    buffer: deque[T]
    more: bool = True  # whether the range may hold more than `buffer`
    last_page: int = 0  # entries its last page held

    def take(self, answer: tuple[Sequence[T], bool]) -> None:
        items, self.more = answer
        self.buffer.extend(items)
        self.last_page = len(items)

    @property
    def running_low(self) -> bool:
        """Whether it has used over half of its last page and the range goes on."""
        return self.more and 2 * len(self.buffer) < self.last_page


class Merge(Generic[T]):
    """Ranges each sorted by `key`, read as one sorted iterator, each range asked for its next
    page only when the merge needs its next item. Items with the key of the item just served
    are dropped (an entry found in both layouts at the upgrade's hour comes once).

    `together` asks several ranges for their next page at once (they are independent
    requests: a caller may send them side by side): the first pages of all, and when one range
    runs out, the next pages of every range that has used over half of its last one (ranges
    of hashed keys run out at about the same time: one round of requests instead of one
    after the other)."""

    def __init__(
        self,
        requests: Sequence[PageRequest[T]],
        key: Callable[[T], str],
        together: FirstPages[T] | None = None,
    ):
        self.key = key
        self._together = together or _one_by_one
        self._sources = [_Source(request, deque()) for request in requests]
        self._heap: list[tuple[str, int]] = []
        self._waiting: list[int] = []  # ranges whose buffer ran out: asked on the next item
        self._last: str | None = None
        self._refill(list(range(len(self._sources))))

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while self._heap or self._waiting:
            if self._waiting:
                waiting, self._waiting = self._waiting, []
                self._refill(waiting)
            if not self._heap:
                break
            _, index = heapq.heappop(self._heap)
            source = self._sources[index]
            item = source.buffer.popleft()
            if source.buffer or not source.more:
                self._settle(index)
            else:  # its next page is asked only if another item is wanted
                self._waiting.append(index)
            item_key = self.key(item)
            if item_key != self._last:
                self._last = item_key
                return item
        raise StopIteration

    @property
    def pending(self) -> bool:
        """Whether more items may come (known without asking any range)."""
        return bool(self._heap or self._waiting)

    def _refill(self, empty: list[int]) -> None:
        """Ask the ranges `empty` (not on the heap) and those running low for their next
        pages together, and put the empty ones' next items on the heap."""
        low = [i for i, source in enumerate(self._sources) if i not in empty and source.running_low]
        due = [*empty, *low]
        for index, answer in zip(
            due, self._together([self._sources[i].request for i in due]), strict=True
        ):
            self._sources[index].take(answer)
        for index in empty:
            self._settle(index)

    def _settle(self, index: int) -> None:
        """Put the range's next item on the heap, asking for its next page if need be (an
        empty page that says more is asked past: Azure may answer one)."""
        source = self._sources[index]
        while not source.buffer and source.more:
            source.take(source.request())
        if source.buffer:
            heapq.heappush(self._heap, (self.key(source.buffer[0]), index))


def _one_by_one(requests: list[PageRequest[T]]) -> list[tuple[Sequence[T], bool]]:
    return [request() for request in requests]
