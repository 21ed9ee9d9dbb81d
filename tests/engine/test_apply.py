"""The apply step on Azurite: batches in, mirror and activities out."""

from __future__ import annotations

from shared.mirror.records import bucket, fields_of
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, Batch, ContactChange
from tests.utils.batches import COLUMNS, account, batch, contact, new_id, seed
from tests.utils.batches import services as services  # the fixture: Azurite only


def test_first_load_logs_nothing_and_mirrors_values(services: Services) -> None:
    account_id = new_id()
    contacts = seed(services, account_id, 3)
    row = services.accounts.get(account_id)
    assert row is not None
    assert fields_of(row) == {"name": "Contoso", "revenue": 10.0, "industrycode": 1}
    assert services.members.count(account_id) == 3
    assert all(services.activities.for_contact(c) == [] for c in contacts)


def test_change_logs_one_activity_per_contact_and_redelivery_logs_none(services: Services) -> None:
    account_id = new_id()
    contacts = seed(services, account_id, 3)
    change = batch(
        accounts=[account(account_id, 2, name="Contoso Ltd", revenue=10.0, industrycode=1)]
    )
    first = apply_batch(services, change)
    assert (first.accounts_applied, first.activities_logged) == (1, 3)
    again = apply_batch(services, change)
    assert (again.accounts_applied, again.activities_logged, again.skipped) == (0, 0, 1)
    for contact_id in contacts:
        (activity,) = services.activities.for_contact(contact_id)
        assert activity["field"] == "name"
        assert (activity["old"], activity["new"]) == ("Contoso", "Contoso Ltd")
        assert activity["accountid"] == account_id
        assert activity["type"] == "Change Data Value"


def test_stale_version_changes_nothing(services: Services) -> None:
    account_id = new_id()
    seed(services, account_id, 1)
    apply_batch(services, batch(accounts=[account(account_id, 5, name="New", revenue=1.0)]))
    stale = apply_batch(services, batch(accounts=[account(account_id, 4, name="Old")]))
    assert stale.skipped == 1
    row = services.accounts.get(account_id)
    assert row is not None
    assert fields_of(row)["name"] == "New"


def test_more_contacts_than_the_limit_suppresses_activities(services: Services) -> None:
    account_id = new_id()
    contacts = seed(services, account_id, 4)  # the limit is 3 in this module
    result = apply_batch(
        services, batch(accounts=[account(account_id, 2, name="X", revenue=10.0, industrycode=2)])
    )
    assert result.activities_logged == 0
    assert result.activities_suppressed == 4 * 2  # four contacts, two changed fields
    row = services.accounts.get(account_id)
    assert row is not None
    assert fields_of(row)["name"] == "X"
    assert all(services.activities.for_contact(c) == [] for c in contacts)


def test_moves_deletes_and_contact_parents(services: Services) -> None:
    first, second = new_id(), new_id()
    moving, *_ = seed(services, first, 2)
    seed(services, second, 1)
    apply_batch(services, batch(contacts=[contact(moving, 2, second)]))
    assert (services.members.count(first), services.members.count(second)) == (1, 2)

    apply_batch(services, batch(contacts=[ContactChange(moving, deleted=True)]))
    assert services.members.count(second) == 1
    row = services.contacts.get(moving)
    assert row is not None
    assert row["is_deleted"] is True

    child = new_id()
    apply_batch(services, batch(contacts=[contact(child, 1, moving, ptype="contact")]))
    child_row = services.contacts.get(child)
    assert child_row is not None
    assert child_row["accountid"] == ""
    assert child_row["parent_type"] == "contact"


def test_deleted_account_is_flagged_and_kept(services: Services) -> None:
    account_id = new_id()
    seed(services, account_id, 1)
    apply_batch(services, batch(accounts=[AccountChange(account_id, deleted=True)]))
    row = services.accounts.get(account_id)
    assert row is not None
    assert row["is_deleted"] is True
    assert fields_of(row)["name"] == "Contoso"


def test_unstorable_value_is_a_sync_error_and_the_rest_applies(services: Services) -> None:
    good, bad = new_id(), new_id()
    result = apply_batch(
        services,
        batch(
            LoadMode.INITIAL,
            # 600,000 characters are 1.2 MB as UTF-16: more than a whole entity holds.
            [account(good, 1, name="Fine"), account(bad, 1, name="x" * 600_000)],
        ),
    )
    assert (result.accounts_applied, result.errors) == (1, 1)
    assert services.accounts.get(bad) is None
    (error,) = services.errors.latest()
    assert error.record_id == bad
    assert "1 MiB" in error.message


def test_first_load_met_by_rows_already_there_keeps_the_newer_and_logs_nothing(
    services: Services,
) -> None:
    # A first-load batch writes without reading; a redelivery of it, or one that meets a row a
    # later batch already wrote, falls back to reading: nothing older wins, nothing doubles.
    account_id, newer_id = new_id(), new_id()
    # Five in one partition (written as one transaction) and two alone (single writes).
    grouped = [i for i in (new_id() for _ in range(5000)) if bucket(i) == "07"][:5]
    contacts = grouped + [i for i in (new_id() for _ in range(50)) if bucket(i) != "07"][:2]
    load = batch(
        LoadMode.INITIAL,
        [account(account_id, 1, name="Contoso"), account(newer_id, 1, name="Old name")],
        [contact(c, 1, account_id) for c in contacts],
    )
    apply_batch(services, batch(accounts=[account(newer_id, 9, name="Newer name")]))
    first = apply_batch(services, load)
    assert (first.accounts_applied, first.contacts_applied, first.skipped) == (1, 7, 1)
    again = apply_batch(services, load)
    assert (again.accounts_applied, again.contacts_applied, again.skipped) == (0, 0, 9)
    newer = services.accounts.get(newer_id)
    assert newer is not None and fields_of(newer)["name"] == "Newer name"
    assert services.members.count(account_id) == 7
    assert all(services.activities.for_contact(c) == [] for c in contacts)


def test_memberships_sent_apart_are_written_by_their_own_batch(services: Services) -> None:
    account_id, other_id = new_id(), new_id()
    known, unknown = new_id(), new_id()
    contacts = Batch(
        "cycle-1",
        "000001",
        LoadMode.INITIAL,
        {},
        contacts=[contact(known, 1, account_id), ContactChange(unknown, 1, parent_id=other_id)],
        members_apart=True,
    )
    # The parent type of `unknown` was not sent: the apply step decides it from the mirror.
    apply_batch(services, batch(LoadMode.INITIAL, [account(other_id, 1, name="Other")]))
    apply_batch(services, Batch.decode(contacts.encode()).encode())
    assert services.members.first(account_id, 10) == []
    assert services.members.first(other_id, 10) == [unknown]
    members = Batch("cycle-1", "000002", LoadMode.INITIAL, {}, members=[(account_id, known)])
    apply_batch(services, members.encode())
    assert services.members.first(account_id, 10) == [known]


def test_a_record_twice_in_one_batch_applies_its_last_occurrence(services: Services) -> None:
    account_id = new_id()
    same_partition = [i for i in (new_id() for _ in range(5000)) if bucket(i) == "11"][:5]
    twice = same_partition[0]
    contacts = [contact(c, 1, account_id) for c in same_partition]
    contacts.append(ContactChange(twice, 2, account_id, "account", values={"fullname": "Later"}))
    result = apply_batch(
        services,
        Batch(
            "cycle-1",
            "000001",
            LoadMode.INITIAL,
            COLUMNS,
            [account(account_id, 1, name="Old"), account(account_id, 2, name="New")],
            contacts,
            members=[(account_id, twice), (account_id, twice)],
        ).encode(),
    )
    assert (result.accounts_applied, result.contacts_applied, result.errors) == (1, 5, 0)
    row = services.contacts.get(twice)
    assert row is not None and fields_of(row)["fullname"] == "Later"
    account_row = services.accounts.get(account_id)
    assert account_row is not None and fields_of(account_row)["name"] == "New"
    assert services.members.count(account_id) == 5
