"""Walks by `modified_since` across a replay (a batch applied again under a new stamp) and a
backfill (a newly selected column filled in): every record once per sync, none skipped."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ServiceRequestError

from shared.mapping import ColumnType
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch, apply_message
from shared.sync.apply.account_applier import AccountApplier
from shared.sync.batches import Batch
from shared.times import utcnow
from tests.utils.batches import COLUMNS
from tests.utils.feed import account, api_get, batch, follow, new_id, settle


def seed(services: Services, count: int) -> list[str]:
    ids = [new_id() for _ in range(count)]
    apply_batch(
        services,
        batch(LoadMode.INITIAL, [account(a, 1, name=f"Account {a}", revenue=1.0) for a in ids]),
    )
    return ids


def names(items: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((i["accountid"], i["fields"]["name"]) for i in items)


def test_a_walk_started_before_a_replay_serves_the_replayed_record_once(
    mirror: Services, feed_api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    replayed, *others = seed(mirror, 3)
    since = utcnow().isoformat()
    # The batch indexes its account, then fails for good before the row is written (its
    # stamp is closed as it goes to poison).
    change = batch(accounts=[account(replayed, 2, name="Replayed", revenue=1.0)])
    original = AccountApplier._write_groups

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise ServiceRequestError("storage went away")

    monkeypatch.setattr(AccountApplier, "_write_groups", crash)
    with pytest.raises(ServiceRequestError):
        apply_message(mirror, change, dequeue_count=5)
    monkeypatch.setattr(AccountApplier, "_write_groups", original)
    # Later batches sync the others.
    for number, other in enumerate(others, start=2):
        apply_batch(mirror, batch(accounts=[account(other, number, name=f"Later {number}")]))
    settle()
    # A walk goes past the failed batch's entry (the row does not have that sync: skipped).
    walk = api_get(feed_api, "/api/accounts", limit=1, modified_since=since)
    first = walk(None)
    assert first["items"] == [] and first["nextPageToken"]

    apply_batch(mirror, change)  # replayed from the poison queue: a new stamp
    settle()
    rest = follow(lambda token: walk(token or first["nextPageToken"]))
    expected = {(replayed, "Replayed"), (others[0], "Later 2"), (others[1], "Later 3")}
    assert names(rest) == Counter(expected)
    # A walk started now serves the same, each once.
    assert names(follow(walk)) == Counter(expected)


def test_a_backfill_is_one_more_sync_served_once(mirror: Services, feed_api: httpx.Client) -> None:
    since = utcnow().isoformat()
    accounts = seed(mirror, 2)
    columns = {**COLUMNS, "accountnumber": ColumnType.STRING}
    backfill = Batch(
        "cycle-2",
        uuid.uuid4().hex,
        LoadMode.DELTA,
        columns,
        [account(a, 1, name=f"Account {a}", revenue=1.0, accountnumber=f"N-{a}") for a in accounts],
        backfill=["accountnumber"],
    ).encode()
    result = apply_batch(mirror, backfill)
    assert (result.accounts_applied, result.activities_logged) == (2, 0)
    settle()
    walked = follow(api_get(feed_api, "/api/accounts", limit=1, modified_since=since))
    assert Counter(i["accountid"] for i in walked) == Counter(accounts)
    # Served where the backfill synced it, with the column it filled in.
    assert {i["fields"].get("accountnumber") for i in walked} == {f"N-{a}" for a in accounts}
