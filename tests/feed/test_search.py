"""`?search=` on the lists (issue 24 item 7): accounts by name, contacts by name or email,
by what they start with whatever the case, paged under tokens that never repeat or skip; the
index follows renames and deletions, and a mirror made before it gets it on a re-load."""

from __future__ import annotations

import random
import uuid

import httpx

from shared.mirror.search import SearchKind
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.storage import SEARCH_TABLE
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, Batch, ContactChange
from tests.utils.batches import COLUMNS
from tests.utils.feed import account, api_get, batch, follow, new_id

NAMES = ["Contoso Ltd", "contoso east", "CONTOSO/West #2?", "Fabrikam", "Ærøskøbing Fisk"]


def person(contact_id: str, parent: str, fullname: str, email: str) -> ContactChange:
    values = {"fullname": fullname, "emailaddress1": email}
    return ContactChange(contact_id, 1, parent, "account", "2026-11-25T10:00:00Z", values)


def found(api: httpx.Client, path: str, text: str, **params: object) -> list[str]:
    items = follow(api_get(api, path, search=text, **params))
    key = "accountid" if path == "/api/accounts" else "contactid"
    return [item[key] for item in items]


def test_accounts_are_found_by_the_start_of_their_name_whatever_the_case(
    mirror: Services, feed_api: httpx.Client
) -> None:
    ids = {name: new_id() for name in NAMES}
    accounts = [account(i, 1, name=name) for name, i in ids.items()]
    apply_batch(mirror, batch(LoadMode.INITIAL, accounts))
    contoso = [ids["Contoso Ltd"], ids["contoso east"], ids["CONTOSO/West #2?"]]
    # In the order of the names; a page of one at a time meets each exactly once.
    assert found(feed_api, "/api/accounts", "conTOSO", limit=1) == [
        contoso[1],
        contoso[0],
        contoso[2],
    ]
    assert found(feed_api, "/api/accounts", "contoso/w") == [contoso[2]]
    assert found(feed_api, "/api/accounts", "ÆRØ") == [ids["Ærøskøbing Fisk"]]
    assert found(feed_api, "/api/accounts", "Contoso Ltd and more") == []
    page = feed_api.get("/api/accounts", params={"search": "fab"}).json()
    assert page["items"][0]["fields"]["name"] == "Fabrikam" and page["nextPageToken"] is None

    # A token belongs to its search: sent with another, it is refused.
    first = feed_api.get("/api/accounts", params={"search": "contoso", "limit": 1}).json()
    other = {"search": "fab", "pageToken": first["nextPageToken"]}
    assert feed_api.get("/api/accounts", params=other).status_code == 400
    combined = {"search": "c", "modified_since": "2026-01-01T00:00:00Z"}
    refused = feed_api.get("/api/accounts", params=combined)
    assert refused.status_code == 422 and "cannot be combined" in refused.text


def test_a_rename_moves_the_entry_and_a_deletion_hides_the_record(
    mirror: Services, feed_api: httpx.Client
) -> None:
    fabrikam, gone = new_id(), new_id()
    apply_batch(
        mirror,
        batch(
            LoadMode.INITIAL,
            [account(fabrikam, 1, name="Fabrikam"), account(gone, 1, name="Fab Gone")],
        ),
    )
    deleted = AccountChange(gone, deleted=True)
    apply_batch(mirror, batch(LoadMode.DELTA, [account(fabrikam, 2, name="Northwind"), deleted]))
    assert found(feed_api, "/api/accounts", "fab") == []
    assert found(feed_api, "/api/accounts", "north") == [fabrikam]
    assert found(feed_api, "/api/accounts", "fab", include_deleted=True) == [gone]
    entries = mirror.storage.table(SEARCH_TABLE).query_entities(
        "id eq @i", parameters={"i": fabrikam}
    )
    assert len(list(entries)) == 1  # the old name's entry is gone


def test_contacts_are_found_by_name_or_email_once_each(
    mirror: Services, feed_api: httpx.Client
) -> None:
    account_id, other_account = new_id(), new_id()
    ann, anna, bob = new_id(), new_id(), new_id()
    contacts = [
        person(ann, account_id, "Ann Smith", "ann@contoso.example"),  # both start with "ann"
        person(anna, other_account, "Anna Berg", "a.berg@fabrikam.example"),
        person(bob, account_id, "Bob Jones", "Ann.Jones@contoso.example"),  # by email only
    ]
    accounts = [account(account_id, 1, name="Contoso"), account(other_account, 1, name="Fab")]
    apply_batch(mirror, batch(LoadMode.INITIAL, accounts, contacts))
    assert sorted(found(feed_api, "/api/contacts", "ANN", limit=1)) == sorted([ann, anna, bob])
    assert found(feed_api, "/api/contacts", "a.berg@") == [anna]
    path = f"/api/accounts/{account_id}/contacts"
    assert sorted(found(feed_api, path, "ann")) == sorted([ann, bob])
    assert found(feed_api, path, "bob") == [bob]


def test_a_mirror_made_before_the_index_gets_it_on_a_reload(
    mirror: Services, feed_api: httpx.Client
) -> None:
    account_id, contact_id = new_id(), new_id()
    rows = [account(account_id, 1, name="Tailspin")]
    people = [person(contact_id, account_id, "Carla Diaz", "carla@tailspin.example")]
    apply_batch(mirror, batch(LoadMode.INITIAL, rows, people))
    mirror.storage.table(SEARCH_TABLE).delete_table()  # as a mirror made by 0.4 has none
    mirror.storage.table(SEARCH_TABLE).create_table()
    assert found(feed_api, "/api/accounts", "tail") == []
    reload = Batch(
        "cycle-2", uuid.uuid4().hex, LoadMode.RELOAD, COLUMNS, rows, people, generation=1
    )
    apply_batch(mirror, reload.encode())  # the same versions: the rows are unchanged
    assert found(feed_api, "/api/accounts", "tail") == [account_id]
    assert found(feed_api, "/api/contacts", "carla@") == [contact_id]


def test_a_first_loads_index_comes_apart_and_a_search_waits_for_the_row(
    mirror: Services, feed_api: httpx.Client
) -> None:
    account_id, contact_id = new_id(), new_id()
    people = [person(contact_id, account_id, "Dana Ito", "dana@wingtip.example")]
    entries = [(SearchKind.CONTACT, "dana ito", contact_id)]
    entries.append((SearchKind.CONTACT, "dana@wingtip.example", contact_id))
    index = Batch("cycle-1", uuid.uuid4().hex, LoadMode.INITIAL, {}, search=entries)
    rows = Batch(
        "cycle-1", uuid.uuid4().hex, LoadMode.INITIAL, {}, contacts=people, search_apart=True
    )
    # The index's batch applied first: its entries point at a row not written yet.
    apply_batch(mirror, index.encode())
    assert found(feed_api, "/api/contacts", "dana") == []
    table = mirror.storage.table(SEARCH_TABLE)
    assert len(list(table.list_entities())) == 2  # passed over, not removed
    apply_batch(mirror, rows.encode())
    assert len(list(table.list_entities())) == 2  # the rows' batch wrote none of its own
    assert found(feed_api, "/api/contacts", "DANA") == [contact_id]
    assert found(feed_api, "/api/contacts", "dana@") == [contact_id]


def test_the_index_is_spread_over_shards_and_read_back_in_order_at_any_page_size(
    mirror: Services, feed_api: httpx.Client
) -> None:
    # Names that share their first letters, as real ones do: the index spreads them by id
    # (a partition per first letter took a tenth of a load's index writes), and a prefix is
    # still served in the order of the values, each record once, whatever the page size.
    account_id, ids = new_id(), random.Random(16)
    names = {
        str(uuid.UUID(int=ids.getrandbits(128))): f"Ma{chr(97 + n % 26)}{n:03d} Person"
        for n in range(160)
    }
    people = [person(i, account_id, name, f"{i[:8]}@x.example") for i, name in names.items()]
    apply_batch(mirror, batch(LoadMode.INITIAL, [account(account_id, 1, name="Contoso")], people))
    entries = list(mirror.storage.table(SEARCH_TABLE).list_entities(select=["PartitionKey"]))
    contact_entries = [
        e["PartitionKey"] for e in entries if e["PartitionKey"].startswith("contact")
    ]
    busiest = max(contact_entries.count(p) for p in set(contact_entries))
    # Ids of a fixed seed: 160 records over 16 shards, none empty, none with twice its share.
    assert len(set(contact_entries)) == 16 and busiest <= len(contact_entries) / 16 * 2
    expected = [i for i, _ in sorted(names.items(), key=lambda item: item[1].casefold())]
    for limit in (1, 3, 16, 50, 1000):
        assert found(feed_api, "/api/contacts", "ma", limit=limit) == expected
    in_m_b = [i for i in expected if names[i].startswith("Mab")]
    assert found(feed_api, "/api/contacts", "MAB", limit=2) == in_m_b
