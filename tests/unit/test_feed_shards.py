"""Where feed entries go and how an hour's shards are read back (no server)."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence

from shared.mirror.records import bucket
from shared.mirror.shards import (
    SHARDS,
    Layout,
    Merge,
    PageRequest,
    hour_of_partition,
    old_partition,
    shard_of,
    shard_partition,
    suffix_of,
)


def test_an_entry_always_gets_the_same_shard_and_ids_spread_evenly() -> None:
    ids = [str(uuid.UUID(int=random.Random(7).getrandbits(128) + n)) for n in range(10_000)]
    shards = Counter(shard_of("synccon", i) for i in ids)
    assert [shard_of("synccon", i) for i in ids[:50]] == [shard_of("synccon", i) for i in ids[:50]]
    assert set(shards) == set(range(SHARDS))
    assert max(shards.values()) / len(ids) <= 1 / SHARDS + 0.01
    # The record decides: its deletion, and an activity entry of its account, share its shard;
    # records of one mirror partition (a batch's) share one.
    record = ids[0]
    assert shard_of("del", f"contact|{record}") == shard_of("synccon", record)
    assert shard_of("act", f"{record}|change|name|00001") == shard_of("syncacc", record)
    same_bucket = [i for i in ids if int(bucket(i)) == int(bucket(record))]
    assert {shard_of("synccon", i) for i in same_bucket} == {shard_of("synccon", record)}


def test_partition_names_keep_hours_in_order_in_both_layouts() -> None:
    assert shard_partition("synccon", 493_210, 7) == "synccon|000493210|07"
    assert old_partition("synccon", 493_210) == "synccon|000493210"
    # A range of old names from one hour to the next covers the shards of the first.
    assert old_partition("act", 5) < shard_partition("act", 5, 0) < shard_partition("act", 5, 15)
    assert shard_partition("act", 5, 15) < old_partition("act", 6)
    assert hour_of_partition("act|000000005|15") == hour_of_partition("act|000000005") == 5
    assert suffix_of("1733380000000|account|contact|abc") == "account|contact|abc"


def test_the_layout_shards_from_its_first_hour_and_reads_that_hour_both_ways() -> None:
    hour_ms = 3_600_000
    before = Layout()
    assert before.partition_of("del", 10 * hour_ms, "contact|x") == "del|000000010"
    layout = Layout(sharded_from=10, old_in_first_hour=True)
    shard = shard_of("del", "contact|x")
    assert layout.partition_of("del", 9 * hour_ms, "contact|x") == "del|000000009"
    assert layout.partition_of("del", 10 * hour_ms, "contact|x") == f"del|000000010|{shard:02d}"
    assert layout.hour_partitions("del", 10)[0] == "del|000000010"
    assert len(layout.hour_partitions("del", 10)) == SHARDS + 1
    assert len(layout.hour_partitions("del", 11)) == SHARDS
    assert layout.partitions_of("del", 10 * hour_ms, "contact|x") == [
        "del|000000010",
        f"del|000000010|{shard:02d}",
    ]


def _pages(keys: list[str], size: int, asked: list[int], index: int) -> PageRequest[str]:
    """A range answering `size` keys a request, counting its requests in asked[index]."""
    rest = list(keys)

    def request() -> tuple[Sequence[str], bool]:
        asked[index] += 1
        page, rest[:] = rest[:size], rest[size:]
        return page, bool(rest)

    return request


def test_the_merge_serves_every_key_once_in_order_asking_pages_only_when_needed() -> None:
    rng = random.Random(3)
    keys = sorted({f"{rng.randrange(10**6):013d}|{n}" for n in range(2_000)})
    ranges: list[list[str]] = [[] for _ in range(SHARDS)]
    for key in keys:
        ranges[shard_of("synccon", suffix_of(key))].append(key)
    ranges[0].insert(0, keys[0])  # the same entry in two ranges (both layouts) comes once
    ranges[0].sort()
    asked = [0] * SHARDS
    merge = Merge([_pages(r, 10, asked, i) for i, r in enumerate(ranges)], key=str)
    first = [next(merge) for _ in range(20)]
    assert first == keys[:20]
    assert sum(asked) == SHARDS  # 20 keys need only each range's first page of 10
    assert merge.pending
    assert first + list(merge) == keys
    assert not merge.pending


def test_a_merge_passes_over_empty_pages_that_say_more() -> None:
    answers = iter([([], True), ([], True), (["b"], False)])
    merge = Merge([lambda: next(answers), lambda: (["a", "c"], False)], key=str)
    assert list(merge) == ["a", "b", "c"]
