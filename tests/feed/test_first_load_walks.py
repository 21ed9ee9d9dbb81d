"""A first load writes no synced-stream entries: `modified_since` walks and `export --since`
read its rows from the mirror itself, and still serve every record once per sync, also when
the walk starts during the load, a batch of it crashes and is redelivered, and the records
change after it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

import shared.sync.apply.contact_applier as contact_applier
from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.feed_index import Stream
from shared.mirror.writes import create_all
from shared.services import Services, get_services, reset_services
from shared.storage import BATCH_QUEUE
from shared.sync.apply import apply_batch
from shared.times import iso, utcnow
from tests.utils.faults import cycle_by_stages
from tests.utils.feed import SETTLE_S, api_get, follow, settle
from tests.utils.helpers import call_cli, make_account

Walk = Callable[[str | None], dict[str, Any]]


@pytest.fixture
def synced(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The simulator's services with the feeds' settle time shortened, as the API serves them."""
    monkeypatch.setenv("ACCTSYNC_FEED_SETTLE_SECONDS", str(SETTLE_S))
    # Pages of a few records: a table's load is several batches, which tests apply apart.
    monkeypatch.setenv("ACCTSYNC_PAGE_SIZE", "4")
    reset_services()
    yield get_services()
    reset_services()


def org(simulator: SimulatorHandle, accounts: int, contacts: int) -> tuple[list[str], list[str]]:
    made = [make_account(simulator, f"Account {i}", contacts) for i in range(accounts)]
    return [a for a, _ in made], [c for _, ids in made for c in ids]


def synced_entries(services: Services, stream: Stream) -> list[str]:
    rows = services.feed.table.query_entities(
        "PartitionKey gt @low and PartitionKey lt @high",
        parameters={"low": f"{stream.value}|", "high": f"{stream.value}|~"},
    )
    return [str(row["id"]) for row in rows]


def ids(items: list[dict[str, Any]], kind: str) -> list[str]:
    return [str(item[f"{kind}id"]) for item in items]


def walk(api: httpx.Client, kind: str, since: datetime | str, limit: int = 2) -> Walk:
    at = since if isinstance(since, str) else since.isoformat()
    return api_get(api, f"/api/{kind}s", limit=limit, modified_since=at)


def synced_times(services: Services, kind: str) -> dict[str, datetime]:
    records = services.accounts if kind == "account" else services.contacts
    return {str(r["RowKey"]): r["synced_at"] for r in records.table.list_entities()}


def assert_once_per_sync(items: list[dict[str, Any]], kind: str, services: Services) -> None:
    """No sync of a record served twice, and each record's last item is its latest sync."""
    syncs = Counter((item[f"{kind}id"], item["synced_at"]) for item in items)
    assert [sync for sync, count in syncs.items() if count > 1] == []
    last = {item[f"{kind}id"]: item["synced_at"] for item in items}
    assert last == {i: iso(at) for i, at in synced_times(services, kind).items()}


def test_a_first_load_writes_no_synced_entries_and_walks_serve_each_row_once(
    simulator: SimulatorHandle, synced: Services, api: httpx.Client, tmp_path: Path
) -> None:
    before = utcnow()
    accounts, contacts = org(simulator, 3, 2)
    first = run_cycle_now(synced)
    assert first.modes == {"contacts": "initial", "accounts": "initial"}
    assert synced_entries(synced, Stream.SYNCED_ACCOUNTS) == []
    assert synced_entries(synced, Stream.SYNCED_CONTACTS) == []
    settle()
    after = utcnow()
    for kind, expected in (("account", accounts), ("contact", contacts)):
        walked = ids(follow(walk(api, kind, before)), kind)
        assert Counter(walked) == Counter(expected)
        # From a load's own sync time: the rows synced then or later, each once.
        times = synced_times(synced, kind)
        at = sorted(times.values())[len(times) // 2]
        at_load = ids(follow(walk(api, kind, at, limit=1)), kind)
        assert Counter(at_load) == Counter(i for i, t in times.items() if t >= at)
        assert follow(walk(api, kind, after)) == []
    # `export --since` is the same walk, whole: the same rows in the same order.
    out = tmp_path / "contacts.ndjson"
    code, err = call_cli(
        ["export", "contacts", "--since", before.isoformat(), "--output", str(out)]
    )
    assert code == 0, err
    exported = [json.loads(line)["contactid"] for line in out.read_text().splitlines()]
    assert exported == ids(follow(walk(api, "contact", before, limit=1000)), "contact")

    # A row changed after the load comes once, with its new values, and is indexed again.
    simulator.control.update_account(accounts[0], {"name": "Renamed"})
    run_cycle_now(synced)
    settle()
    assert synced_entries(synced, Stream.SYNCED_ACCOUNTS) == [accounts[0]]
    changed = synced.accounts.get(accounts[0])
    assert changed is not None and changed["load_sync"] is False
    walked_items = follow(walk(api, "account", before))
    assert Counter(ids(walked_items, "account")) == Counter(accounts)
    (renamed,) = [i for i in walked_items if i["accountid"] == accounts[0]]
    assert renamed["fields"]["name"] == "Renamed"
    assert ids(follow(walk(api, "account", after)), "account") == [accounts[0]]


def test_a_re_load_is_no_first_load_and_indexes_what_it_writes(
    simulator: SimulatorHandle, synced: Services, api: httpx.Client
) -> None:
    accounts, _ = org(simulator, 2, 1)
    run_cycle_now(synced)
    assert synced_entries(synced, Stream.SYNCED_ACCOUNTS) == []
    after_load = utcnow()
    simulator.control.expire_delta_tokens()
    simulator.control.update_account(accounts[1], {"name": "Changed in the re-load"})
    summary = run_cycle_now(synced)
    assert summary.modes["accounts"] == "reload"
    assert synced_entries(synced, Stream.SYNCED_ACCOUNTS) == [accounts[1]]
    settle()
    assert ids(follow(walk(api, "account", after_load)), "account") == [accounts[1]]


def apply_half_then(services: Services, midway: Callable[[], None], *, crash: bool = False) -> int:
    """Apply a stage's queued batches: half of them, then `midway()`, then the rest. With
    `crash`, the first batch first fails after writing part of its rows, and is delivered
    again after `midway()` (as the queue redelivers it)."""
    queue = services.storage.queue(BATCH_QUEUE)
    messages = []
    while received := list(queue.receive_messages(max_messages=32, visibility_timeout=300)):
        messages.extend(received)
    half = max(1, len(messages) // 2)
    if crash:
        _crash_part_way(services, messages[0].content)
    else:
        for message in messages[:half]:
            apply_batch(services, message.content)
    midway()
    for message in messages if crash else messages[half:]:
        apply_batch(services, message.content)
    for message in messages:
        queue.delete_message(message)
    return len(messages)


def _crash_part_way(services: Services, body: str) -> None:
    """The batch writes its first two contact rows, then the worker dies."""
    real = create_all  # what contact_applier calls

    def part_way(table: TableClient, entities: Iterable[Mapping[str, Any]]) -> list[Any]:
        real(table, list(entities)[:2])
        raise RuntimeError("the worker died")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contact_applier, "create_all", part_way)
        with pytest.raises(RuntimeError, match="the worker died"):
            apply_batch(services, body)


@pytest.mark.parametrize("crash", [False, True], ids=["midway", "crash-and-redelivery"])
def test_a_walk_started_during_the_first_load_loses_nothing_and_repeats_no_sync(
    simulator: SimulatorHandle, synced: Services, api: httpx.Client, crash: bool
) -> None:
    since = utcnow()
    accounts, contacts = org(simulator, 10, 2)
    walks = {kind: walk(api, kind, since, limit=2) for kind in ("account", "contact")}
    served: dict[str, list[dict[str, Any]]] = {"account": [], "contact": []}
    tokens: dict[str, str | None] = {}

    def start_walk(kind: str) -> Callable[[], None]:
        def start() -> None:
            # Half-way indeed: some of the table's rows are still to be written.
            assert len(synced_times(synced, kind)) < (
                len(accounts) if kind == "account" else len(contacts)
            )
            settle()
            page = walks[kind](None)
            served[kind].extend(page["items"])
            tokens[kind] = page["nextPageToken"]

        return start

    # Each table's walk starts half-way through its load (contacts first, then accounts).
    stages = iter([(start_walk("contact"), crash), (start_walk("account"), False)])

    def apply_stage() -> int:
        midway, crashes = next(stages)
        return apply_half_then(synced, midway, crash=crashes)

    summary, _ = cycle_by_stages(synced, apply_stage)
    assert summary.status == "succeeded" and summary.modes["contacts"] == "initial"
    assert all(tokens.values())
    # A later sync of records the load wrote, before the walks go on.
    simulator.control.update_account(accounts[0], {"name": "Renamed"})
    simulator.control.update_contact(contacts[0], {"lastname": "Renamed"})
    run_cycle_now(synced)
    settle()
    for kind, get in walks.items():
        first_token = tokens[kind]
        served[kind].extend(follow(lambda token, g=get, t=first_token: g(token or t)))  # type: ignore[misc]
        expected = accounts if kind == "account" else contacts
        walked = Counter(ids(served[kind], kind))
        assert set(walked) == set(expected)
        # Only a record synced again may come twice (once per sync, the latest last).
        assert {i for i, n in walked.items() if n > 1} <= {accounts[0], contacts[0]}
        assert_once_per_sync(served[kind], kind, synced)
    assert synced_entries(synced, Stream.SYNCED_CONTACTS) == [contacts[0]]
