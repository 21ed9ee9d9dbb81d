"""The change feed: every activity logged after a token's point exactly once, in logging
order, also when batches are applied again and while slower writers are still writing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.mirror import activity_feed
from shared.mirror.feed_index import FeedWriter, Stream, now_ms
from shared.services import Services
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, ContactChange
from shared.times import utcnow
from tests.utils.feed import (
    account,
    api_get,
    batch,
    follow,
    plant_old_entry,
    seed_account,
    settle,
)


def feed_since(api: httpx.Client, since: str, **params: object) -> list[dict[str, Any]]:
    token = api.get("/api/activities/pagingtoken", params={"since": since}).json()
    first = token["nextPageToken"]

    get = api_get(api, "/api/activities", **params)
    return follow(lambda t: get(t or first), until_caught_up=True)


def keys(items: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(i["contactid"], i["field"], i["new"]) for i in items]


def test_a_token_taken_before_a_fan_out_yields_its_activities_once_in_order(
    mirror: Services, feed_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Entries of 16 contacts: each fan-out spans three, and pages of 7 end inside them.
    monkeypatch.setattr(activity_feed, "GROUP_SIZE", 16)
    account_id, contacts = seed_account(mirror, 40)
    since = utcnow().isoformat()
    # A reader follows the feed while the fan-outs are written (pages of 7).
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    token = feed_api.get("/api/activities/pagingtoken", params={"since": since}).json()
    position = {"token": token["nextPageToken"]}

    def read() -> None:
        get = api_get(feed_api, "/api/activities", limit=7)
        while not stop.is_set():
            page = get(position["token"])
            seen.extend(page["items"])
            position["token"] = page["nextPageToken"]

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in (2, 3, 4):
            apply_batch(
                mirror,
                batch(accounts=[account(account_id, version, name=f"v{version}", revenue=1.0)]),
            )
        settle()
        stop.set()
    finally:
        reader.join()
    get = api_get(feed_api, "/api/activities", limit=7)
    seen.extend(follow(lambda t: get(t or position["token"]), until_caught_up=True))

    expected = [(c, "name", f"v{v}") for v in (2, 3, 4) for c in sorted(contacts)]
    assert keys(seen) == expected  # each once, the fan-outs in the order they were logged
    assert {i["accountid"] for i in seen} == {account_id}
    assert keys(feed_since(feed_api, since, limit=1000)) == expected
    # `fields` keeps the walk the same and shows only those fields' changes.
    assert keys(feed_since(feed_api, since, fields="revenue")) == []


def test_redelivered_batches_add_nothing(mirror: Services, feed_api: httpx.Client) -> None:
    account_id, contacts = seed_account(mirror, 5)
    since = utcnow().isoformat()
    change = batch(accounts=[account(account_id, 2, name="Contoso Ltd", revenue=2.0)])
    apply_batch(mirror, change)
    apply_batch(mirror, change)  # redelivered after it finished: skipped
    # Redelivered after a crash between its activities and its rows: everything is written
    # again, under the batch's first stamp, so under the same keys.
    row = mirror.accounts.get(account_id)
    assert row is not None
    mirror.accounts.table.upsert_entity(
        {**row, "version": 1, "f_name": "Contoso", "f_revenue": 1.0}
    )
    again = apply_batch(mirror, change)
    assert again.activities_logged == 10
    settle()
    items = feed_since(feed_api, since)
    assert sorted(keys(items)) == sorted(
        (c, f, v) for c in contacts for f, v in (("name", "Contoso Ltd"), ("revenue", 2.0))
    )


def test_a_slower_writer_holds_readers_back_until_it_has_written(
    mirror: Services, feed_api: httpx.Client
) -> None:
    since = utcnow().isoformat()
    slow = FeedWriter(mirror.feed, "test|slow")
    fast = FeedWriter(mirror.feed, "test|fast")
    slow.write(Stream.DELETED, [])  # nothing yet
    _ = slow.stamp  # taken first: its entries will sort first
    fast.write(Stream.DELETED, [("contact|b", _deleted("b"))])
    fast.close()
    settle()
    token = feed_api.get("/api/deleted/pagingtoken", params={"since": since}).json()
    page = feed_api.get("/api/deleted", params={"pageToken": token["nextPageToken"]}).json()
    # The fast writer's entry is there, but after the slow one's stamp: not served yet.
    assert (page["items"], page["moreResult"]) == ([], False)
    slow.write(Stream.DELETED, [("contact|a", _deleted("a"))])
    slow.close()
    settle()
    rest = feed_api.get("/api/deleted", params={"pageToken": page["nextPageToken"]}).json()
    assert [i["id"] for i in rest["items"]] == ["a", "b"]


def _deleted(record_id: str) -> dict[str, Any]:
    return {"type": "contact", "id": record_id, "deleted_at": utcnow()}


def test_deleted_accounts_and_contacts_feed(mirror: Services, feed_api: httpx.Client) -> None:
    account_id, contacts = seed_account(mirror, 3)
    since = utcnow().isoformat()
    change = batch(
        accounts=[AccountChange(account_id, deleted=True)],
        contacts=[ContactChange(contacts[0], deleted=True)],
    )
    apply_batch(mirror, change)
    apply_batch(mirror, change)
    settle()
    token = feed_api.get("/api/deleted/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/deleted")
    items = follow(lambda t: get(t or token["nextPageToken"]), until_caught_up=True)
    assert sorted((i["type"], i["id"]) for i in items) == [
        ("account", account_id),
        ("contact", contacts[0]),
    ]


def test_a_unit_run_again_after_it_was_closed_writes_ahead_of_readers_once(
    mirror: Services, feed_api: httpx.Client
) -> None:
    # A batch wrote part of its entries, then failed for good: its marker was closed (it went
    # to poison) and a reader went past its stamp. Replayed once fixed, it writes everything
    # again: the part written before is not served twice, the rest is not lost behind the reader.
    since = utcnow().isoformat()
    first = FeedWriter(mirror.feed, "batch|cycle-1|7")
    first.write(Stream.DELETED, [("contact|a", _deleted("a"))])
    first.feed.stamps.close(first.identity)
    settle()
    token = feed_api.get("/api/deleted/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/deleted")
    seen = get(token["nextPageToken"])
    assert ([i["id"] for i in seen["items"]], seen["moreResult"]) == (["a"], False)

    replay = FeedWriter(mirror.feed, "batch|cycle-1|7")
    replay.write(Stream.DELETED, [("contact|a", _deleted("a")), ("contact|b", _deleted("b"))])
    replay.close()
    assert replay.stamp.at_ms > first.stamp.at_ms
    assert replay.stamp.earlier == (first.stamp.at_ms,)
    settle()
    rest = follow(lambda t: get(t or seen["nextPageToken"]), until_caught_up=True)
    assert [i["id"] for i in rest] == ["b"]
    everything = follow(lambda t: get(t or token["nextPageToken"]), until_caught_up=True)
    assert [i["id"] for i in everything] == ["a", "b"]


def test_entries_and_stamps_past_the_retention_go_and_the_rest_is_served(
    mirror: Services, feed_api: httpx.Client
) -> None:
    day_ms = 24 * 3600 * 1000
    old_ms = now_ms() - 40 * day_ms
    plant_old_entry(mirror, old_ms, "old")
    recent = FeedWriter(mirror.feed, "test|recent")
    recent.write(Stream.DELETED, [("contact|recent", _deleted("recent"))])
    recent.close()
    settle()
    assert mirror.feed.remove_older_than(now_ms() - 30 * day_ms) == 2  # the entry, its stamp
    since = datetime.fromtimestamp((old_ms - day_ms) / 1000, UTC).isoformat()
    token = feed_api.get("/api/deleted/pagingtoken", params={"since": since}).json()
    get = api_get(feed_api, "/api/deleted")
    items = follow(lambda t: get(t or token["nextPageToken"]), until_caught_up=True)
    assert [i["id"] for i in items] == ["recent"]
    assert mirror.feed.remove_older_than(now_ms() - 30 * day_ms) == 0
