"""The feed's streams sharded within each hour (issue 26): a load's writes spread over 16
partitions, and every walk reading them back (lists by `modified_since`, the activity feed,
exports, the deleted feed) serves each record once, in order, across tokens and across the
upgrade from the one-partition-per-hour layout."""

from __future__ import annotations

import gc
import json
import weakref
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.mirror import activity_feed, stream_range
from shared.mirror.activity_feed import activities_since, activity_page
from shared.mirror.feed_index import (
    LAYOUT_PARTITION,
    Stream,
    now_ms,
    old_layout_keys,
    start_position,
)
from shared.mirror.shards import SHARDS, WINDOW_MS, hour_of, shard_of
from shared.mirror.stream_range import ParkedRanges
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.sync.batches import ContactChange
from shared.times import utcnow
from tests.feed.test_export import export
from tests.utils.feed import account, api_get, batch, contact, follow, new_id, settle


def feed_partitions(services: Services, prefix: str) -> Counter[str]:
    """Entries of the feed table per partition whose name starts with `prefix`."""
    rows = services.feed.table.query_entities(
        "PartitionKey ge @low and PartitionKey lt @high",
        parameters={"low": prefix, "high": prefix[:-1] + chr(ord(prefix[-1]) + 1)},
        select=["PartitionKey"],
    )
    return Counter(str(row["PartitionKey"]) for row in rows)


def load_accounts(mirror: Services, *, accounts: int, contacts_each: int) -> dict[str, list[str]]:
    """A first load of `accounts` accounts of `contacts_each` contacts; their ids."""
    ids = {new_id(): [new_id() for _ in range(contacts_each)] for _ in range(accounts)}
    apply_batch(
        mirror,
        batch(
            LoadMode.INITIAL,
            [account(a, 1, name="Contoso", revenue=1.0) for a in ids],
            [contact(c, 1, a) for a, contacts in ids.items() for c in contacts],
        ),
    )
    return ids


def test_a_first_load_spreads_its_synced_entries_and_the_walk_serves_each_once_in_order(
    mirror: Services, feed_api: httpx.Client
) -> None:
    since = utcnow().isoformat()
    account_id, contact_ids = new_id(), [new_id() for _ in range(1_600)]
    apply_batch(
        mirror,
        batch(
            LoadMode.INITIAL,
            [account(account_id, 1, name="Contoso", revenue=1.0)],
            [contact(c, 1, account_id) for c in contact_ids],
        ),
    )
    partitions = feed_partitions(mirror, "synccon|")
    assert len(partitions) == SHARDS
    assert max(partitions.values()) / len(contact_ids) <= 1 / SHARDS + 0.03
    settle()
    # One batch, one stamp: the walk serves its contacts in id order, across 16 partitions.
    walk = api_get(feed_api, "/api/contacts", limit=150, modified_since=since)
    first = walk(None)
    assert [i["contactid"] for i in first["items"]] == sorted(contact_ids)[:150]
    # A token issued mid-walk goes on where it stopped, also after more syncs meanwhile.
    later = new_id()
    apply_batch(mirror, batch(contacts=[contact(later, 1, account_id)]))
    settle()
    rest = follow(lambda token: walk(token or first["nextPageToken"]))
    served = [i["contactid"] for i in first["items"] + rest]
    assert served == [*sorted(contact_ids), later]


def test_the_activity_feed_and_its_export_over_shards_serve_each_activity_once_in_order(
    mirror: Services,
    feed_api: httpx.Client,
    storage_connection: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Entries of 3 contacts: a change of 10 accounts of 6 contacts makes 20 entries a field.
    monkeypatch.setattr(activity_feed, "GROUP_SIZE", 3)
    accounts = load_accounts(mirror, accounts=10, contacts_each=6)
    since = utcnow().isoformat()
    for version in (2, 3):
        apply_batch(
            mirror,
            batch(
                accounts=[account(a, version, name=f"v{version}", revenue=1.0) for a in accounts]
            ),
        )
    settle()
    # Each account's entries in its own shard: spread, not one partition.
    shards = {int(p.rpartition("|")[2]) for p in feed_partitions(mirror, "act|")}
    assert shards == {shard_of("act", f"{a}|") for a in accounts} and len(shards) > 1
    expected = [
        (c, a, f"v{v}") for v in (2, 3) for a in sorted(accounts) for c in sorted(accounts[a])
    ]

    def keys(items: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
        return [(i["contactid"], i["accountid"], i["new"]) for i in items]

    token = feed_api.get("/api/activities/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/activities", limit=7)
    assert keys(follow(lambda t: get(t or token["nextPageToken"]), until_caught_up=True)) == (
        expected
    )
    run = export(["activities", "--since", since], storage_connection, tmp_path)
    assert run.returncode == 0, run.stderr
    assert keys([json.loads(line) for line in run.stdout.splitlines()]) == expected


def test_entries_written_before_the_upgrade_are_served_then_the_sharded_ones(
    mirror: Services, feed_api: httpx.Client
) -> None:
    # The old code wrote deletions two hours ago and in this hour, one partition an hour.
    old = [new_id() for _ in range(3)]
    now = now_ms()
    at = [
        now - 2 * WINDOW_MS,
        now - 2 * WINDOW_MS + 1,
        max(now - 10_000, now // WINDOW_MS * WINDOW_MS),
    ]
    for record_id, at_ms in zip(old, at, strict=True):
        keys = old_layout_keys(Stream.DELETED, at_ms, f"contact|{record_id}")
        entry = {**keys, "type": "contact", "id": record_id, "deleted_at": utcnow()}
        mirror.feed.table.upsert_entity(entry)
    since = (utcnow() - timedelta(hours=3)).isoformat()
    token = feed_api.get("/api/deleted/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/deleted", limit=1)
    first = get(token["nextPageToken"])  # a token issued before the upgrade
    assert [i["id"] for i in first["items"]] == old[:1]

    # The new code loads contacts and deletes them: its first entry records the layout.
    account_id, new = new_id(), [new_id() for _ in range(40)]
    apply_batch(mirror, batch(LoadMode.INITIAL, [], [contact(c, 1, account_id) for c in new]))
    layout = mirror.feed.table.get_entity(LAYOUT_PARTITION, "sharded")
    assert layout["from_hour"].value == hour_of(now_ms()) and layout["old_in_first_hour"]
    apply_batch(mirror, batch(contacts=[ContactChange(c, deleted=True) for c in new]))
    assert len(feed_partitions(mirror, f"del|{hour_of(now_ms()):09d}|")) > SHARDS // 2
    settle()

    rest, next_token = [], first["nextPageToken"]
    while True:  # caught up to the watermark the token carried, then to a fresh one
        page = get(next_token)
        rest.extend(page["items"])
        next_token = page["nextPageToken"]
        if not page["items"] and not page["moreResult"]:
            break
    assert [i["id"] for i in rest] == [*old[1:], *sorted(new)]
    whole = api_get(feed_api, "/api/deleted", limit=1000)
    whole_walk = follow(lambda t: whole(t or token["nextPageToken"]), until_caught_up=True)
    assert [i["id"] for i in whole_walk] == [
        *old,
        *sorted(new),
    ]


def test_retention_removes_old_hours_of_both_layouts(mirror: Services) -> None:
    old_ms = now_ms() - 40 * 24 * WINDOW_MS
    mirror.feed.table.upsert_entity(
        {**old_layout_keys(Stream.DELETED, old_ms, "contact|a"), "id": "a"}
    )
    # Sharded since 50 days ago (as if upgraded then): entries 40 days old are in shards.
    mirror.feed.table.upsert_entity(
        {"PartitionKey": LAYOUT_PARTITION, "RowKey": "sharded", "from_hour": hour_of(old_ms) - 240}
    )
    mirror.feed.write(
        [{**mirror.feed.keys(Stream.DELETED, old_ms + 1, f"contact|{i}"), "id": i} for i in "bcd"]
    )
    assert len(feed_partitions(mirror, "del|")) >= 2
    assert mirror.feed.remove_older_than(now_ms() - 30 * 24 * WINDOW_MS) >= 4
    assert not feed_partitions(mirror, "del|")


def test_a_page_asked_again_with_its_token_is_the_same_page(
    mirror: Services, feed_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process keeps the reads a page stopped in for the next page: a client that asks for
    # that page twice (a retry), or after the process forgot them, gets the same page.
    monkeypatch.setattr(activity_feed, "GROUP_SIZE", 4)
    accounts = load_accounts(mirror, accounts=6, contacts_each=10)
    since = utcnow().isoformat()
    apply_batch(mirror, batch(accounts=[account(a, 2, name="v2", revenue=1.0) for a in accounts]))
    settle()
    token = feed_api.get("/api/activities/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/activities", limit=7)
    first = get(token["nextPageToken"])
    second = get(first["nextPageToken"])
    assert get(first["nextPageToken"])["items"] == second["items"]  # asked again
    mirror.feed.parked = ParkedRanges()  # as another process would serve it
    assert get(first["nextPageToken"])["items"] == second["items"]
    rest = follow(lambda t: get(t or second["nextPageToken"]), until_caught_up=True)
    served = [(i["contactid"], i["accountid"]) for i in first["items"] + second["items"] + rest]
    assert served == [(c, a) for a in sorted(accounts) for c in sorted(accounts[a])]


def change_accounts_in_small_entries(
    mirror: Services, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, str]]:
    """A field changed on 12 accounts of 8 contacts, in entries of 2 contacts (48 entries over
    the shards); the activities (contact, account) in the feed's order."""
    monkeypatch.setattr(activity_feed, "GROUP_SIZE", 2)
    accounts = load_accounts(mirror, accounts=12, contacts_each=8)
    apply_batch(mirror, batch(accounts=[account(a, 2, name="v2", revenue=1.0) for a in accounts]))
    settle()
    return [(c, a) for a in sorted(accounts) for c in sorted(accounts[a])]


def test_a_walk_from_before_the_hour_serves_each_activity_once_in_order_from_any_process(
    mirror: Services, feed_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hour is read from its start with a few queries over runs of its shards; made to
    # stop part-way here (pages of 5, an hour "small" up to 20 entries), the shards they did
    # not read to their end go on one by one. Every page served as by another process, or
    # all by one.
    monkeypatch.setattr(stream_range, "MOST_PER_REQUEST", 5)
    monkeypatch.setattr(stream_range, "HOUR_AT_ONCE", 20)
    expected = change_accounts_in_small_entries(mirror, monkeypatch)
    since = (utcnow() - timedelta(hours=1)).isoformat()
    token = feed_api.get("/api/activities/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/activities", limit=9)

    def from_another_process(page_token: str | None) -> Any:
        mirror.feed.parked = ParkedRanges()
        return get(page_token or token["nextPageToken"])

    for served_by in (from_another_process, lambda t: get(t or token["nextPageToken"])):
        items = follow(served_by, until_caught_up=True)
        assert [(i["contactid"], i["accountid"]) for i in items] == expected


def test_an_hour_read_from_its_start_is_asked_with_a_few_queries_not_one_per_shard(
    mirror: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A walk that comes to an hour from before it (a reader of the feed in pages, an export)
    # asks that hour's 16 shards with a few queries (each over a run of shards) while the hour
    # is small, not each shard with its own requests (issue 26, item 3).
    expected = change_accounts_in_small_entries(mirror, monkeypatch)
    queries = 0
    query_entities = mirror.feed.table.query_entities

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal queries
        queries += 1
        return query_entities(*args, **kwargs)

    monkeypatch.setattr(mirror.feed.table, "query_entities", counted)
    position: dict[str, Any] = {"after": start_position(now_ms() - WINDOW_MS)}
    served: list[tuple[str, str]] = []
    while True:
        page = activity_page(mirror.feed, position, 10)
        served += [(contact_id, str(entry["accountid"])) for entry, contact_id in page.items]
        position = page.position
        if not page.more:
            break
    assert served == expected
    assert queries < SHARDS


def test_an_export_of_the_feed_leaves_no_entry_to_the_cycle_collector(
    mirror: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An hour read from its start is read with one iterator of the SDK's, which holds itself
    # and its last answer: entries must be freed with what the export wrote, not at the cyclic
    # collector's next full run (an export's memory would grow with every hour it reads).
    monkeypatch.setattr(stream_range, "MOST_PER_REQUEST", 5)
    expected = change_accounts_in_small_entries(mirror, monkeypatch)
    alive: list[weakref.ref[Any]] = []
    gc.collect()
    gc.disable()
    try:
        served = []
        for entry, contact in activities_since(mirror.feed, now_ms() - WINDOW_MS):
            served.append((contact, str(entry["accountid"])))
            alive.append(weakref.ref(entry))
            del entry
        left = [ref for ref in alive if ref() is not None]
    finally:
        gc.enable()
    assert served == expected
    assert left == []
