"""The bench's busiest-partition figure (issue 26): the share one partition takes of its
table's writes, over the tables that hold at least 1/16 of them, summed over processes."""

from __future__ import annotations

from bench.counting import spread


def test_busiest_partition_of_the_tables_that_matter() -> None:
    cycle = {"contacts": {f"{n:02d}": 100 for n in range(32)}, "state": {"one": 50}}
    worker = {"feed": {"2026120412": 900, "2026120413": 100}}
    found = spread(cycle, worker)
    assert found.entities == 3_200 + 50 + 1_000
    # The feed's hot hour is the figure; the state table's single partition is too small to.
    assert (found.table, found.partition) == ("feed", "2026120412")
    assert found.share == 0.9
    assert found.partitions == 2
    assert found.overall_share == 900 / 4_250


def test_an_even_spread_meets_the_goal() -> None:
    found = spread({"contacts": {f"{n:02d}": 10 for n in range(64)}})
    assert found.share == 1 / 64
