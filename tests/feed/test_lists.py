"""Paged lists while the mirror changes: following the tokens never repeats a record and never
skips one that was there for the whole walk; "synced since" never serves one sync twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx

from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, ContactChange
from shared.times import utcnow
from tests.utils.feed import (
    account,
    api_get,
    batch,
    contact,
    follow,
    new_id,
    seed_account,
    settle,
)

ROUNDS = 8
# Between two rounds: the walks overlap the writes however fast this machine applies them.
PACE_S = 0.3


class Writer:
    """Cycles applying while readers walk: contacts changed, added, deleted and moved."""

    def __init__(self, services: Services, accounts: list[str], contacts: dict[str, str]):
        self.services = services
        self.accounts = accounts
        self.home = dict(contacts)  # contact -> account, as the writer leaves it
        self.version = dict.fromkeys(contacts, 1)
        self.deleted: set[str] = set()
        self.moved: set[str] = set()
        self.added: set[str] = set()
        self.done = threading.Event()
        self.rounds = 0  # applied so far

    def run(self) -> None:
        try:
            for round_number in range(ROUNDS):
                self._round(round_number)
                self.rounds += 1
                time.sleep(PACE_S)
        finally:
            self.done.set()

    def _round(self, number: int) -> None:
        live = sorted(c for c in self.home if c not in self.deleted)
        changes: list[ContactChange] = []
        for contact_id in live[number::9][:25]:  # changed in place
            changes.append(self._next(contact_id, self.home[contact_id]))
        for contact_id in live[number + 3 :: 40][:3]:  # moved to the next account
            target = self.accounts[(self.accounts.index(self.home[contact_id]) + 1) % 3]
            self.moved.add(contact_id)
            changes.append(self._next(contact_id, target))
        for contact_id in live[number + 5 :: 50][:3]:  # deleted in Dynamics
            self.deleted.add(contact_id)
            changes.append(ContactChange(contact_id, deleted=True))
        for _ in range(6):  # new
            contact_id = new_id()
            self.added.add(contact_id)
            self.version[contact_id] = 0
            changes.append(self._next(contact_id, self.accounts[number % 3]))
        ids = {c.id for c in changes}
        assert len(ids) == len(changes)
        apply_batch(self.services, batch(contacts=changes))

    def _next(self, contact_id: str, account_id: str) -> ContactChange:
        self.version[contact_id] += 1
        self.home[contact_id] = account_id
        return contact(contact_id, self.version[contact_id], account_id)


def seed(services: Services, per_account: int) -> tuple[list[str], dict[str, str]]:
    accounts = [new_id() for _ in range(3)]
    contacts = {new_id(): a for a in accounts for _ in range(per_account)}
    apply_batch(
        services,
        batch(
            LoadMode.INITIAL,
            [account(a, 1, name=f"Account {n}", revenue=1.0) for n, a in enumerate(accounts)],
            [contact(c, 1, a) for c, a in contacts.items()],
        ),
    )
    return accounts, contacts


def ids(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(i["contactid"] for i in items)


def test_walks_while_cycles_apply_never_repeat_or_skip(
    mirror: Services, feed_api: httpx.Client
) -> None:
    accounts, contacts = seed(mirror, 60)
    first = accounts[0]
    since = utcnow().isoformat()
    writer = Writer(mirror, accounts, contacts)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        walked = ids(follow(api_get(feed_api, "/api/contacts", limit=6, include_deleted=True)))
        overlapped = not writer.done.is_set()
        live = ids(follow(api_get(feed_api, f"/api/accounts/{first}/contacts", limit=5)))
        with_deleted = ids(
            follow(
                api_get(feed_api, f"/api/accounts/{first}/contacts", limit=5, include_deleted=True)
            )
        )
        # Entries are served once they settle: wait for two rounds' worth, then walk while the
        # writer goes on (else a fast walk finds nothing settled yet, and tests nothing).
        while writer.rounds < 2 and not writer.done.is_set():
            time.sleep(0.05)
        settle()
        synced = follow(api_get(feed_api, "/api/contacts", limit=4, modified_since=since))
    finally:
        thread.join()
    assert overlapped, "the walk ended before the cycles did: nothing was tested"

    # The whole table: every contact that was there at the start, once; new ones at most once.
    assert max(walked.values()) == 1
    assert set(contacts) <= set(walked) <= set(contacts) | writer.added
    # One account: its contacts throughout (neither moved nor deleted) once each.
    stayed = {c for c, a in contacts.items() if a == first} - writer.moved - writer.deleted
    for walk in (live, with_deleted):
        assert max(walk.values()) == 1
        assert stayed <= set(walk) <= set(writer.home) | set(contacts)
    # With the deleted ones, those deleted while the walk went on are not lost either.
    deleted_here = {c for c in writer.deleted if contacts.get(c) == first} - writer.moved
    assert deleted_here and deleted_here <= set(with_deleted)
    # Synced since: one sync of a contact is served at most once (a contact synced again while
    # the walk went on may come again, later, with its newer sync).
    syncs = Counter((i["contactid"], i["synced_at"]) for i in synced)
    assert syncs and max(syncs.values()) == 1

    # Once the cycles are over, the same walk serves each contact synced since then once, as
    # it is now.
    settle()
    after = follow(api_get(feed_api, "/api/contacts", limit=7, modified_since=since))
    changed = {c for c in writer.home if writer.version[c] > 1 or c in writer.added}
    changed -= writer.deleted
    assert Counter(i["contactid"] for i in after) == Counter(changed)
    for item in after:
        row = mirror.contacts.get(item["contactid"])
        assert row is not None and item["accountid"] == writer.home[item["contactid"]]


def test_accounts_list_shows_the_selected_fields_and_deleted_ones_on_request(
    mirror: Services, feed_api: httpx.Client
) -> None:
    accounts, _ = seed(mirror, 2)
    apply_batch(mirror, batch(accounts=[AccountChange(accounts[1], deleted=True)]))
    shown = follow(api_get(feed_api, "/api/accounts", limit=2))
    assert sorted(a["accountid"] for a in shown) == sorted([accounts[0], accounts[2]])
    every = follow(api_get(feed_api, "/api/accounts", limit=2, include_deleted=True))
    assert sorted(a["accountid"] for a in every) == sorted(accounts)
    assert {a["fields"]["name"] for a in every} == {"Account 0", "Account 1", "Account 2"}
    unknown = feed_api.get(f"/api/accounts/{new_id()}/contacts")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "account_not_found"
    too_many = feed_api.get("/api/accounts", params={"limit": 5000})
    assert too_many.status_code == 422


def test_far_times_mean_the_start_or_the_end_not_a_wrong_page(
    mirror: Services, feed_api: httpx.Client
) -> None:
    """A time past 2286 made a 14-digit key position that compared as an earlier one: since
    the year 2500 listed everything synced from 2023 on."""
    seed_account(mirror, 2)
    settle()
    for route in ("/api/accounts", "/api/contacts"):
        everything = follow(api_get(feed_api, route, limit=100))
        assert everything
        future = api_get(feed_api, route, limit=100, modified_since="2500-01-01T00:00:00Z")
        assert follow(future) == []
        past = api_get(feed_api, route, limit=100, modified_since="0001-01-01T00:00:00Z")
        assert sorted(map(str, follow(past))) == sorted(map(str, everything))
    token = feed_api.get("/api/activities/pagingtoken", params={"since": "2500-01-01T00:00:00Z"})
    page = feed_api.get("/api/activities", params={"pageToken": token.json()["nextPageToken"]})
    assert page.status_code == 200 and page.json()["items"] == []
