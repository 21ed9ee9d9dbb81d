"""The apply step and deletion flags: a record Dynamics still has never stays flagged deleted,
and a row a re-load cannot store keeps its last good values without being swept."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.mirror.records import bucket, fields_of
from shared.mirror.row import generation_of
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, Batch, ContactChange, SweepBatch
from shared.times import utcnow
from tests.utils.batches import COLUMNS, account, contact, new_id, seed
from tests.utils.batches import services as services  # the fixture: Azurite only

RELOAD = 1  # the generation of the re-load these tests apply


def reload(
    accounts: list[AccountChange] | None = None,
    contacts: list[ContactChange] | None = None,
    *,
    read_at: datetime | None = None,
) -> str:
    """A re-load batch whose changes were read at `read_at` (default: now)."""
    return Batch(
        "cycle-2",
        new_id(),
        LoadMode.RELOAD,
        COLUMNS,
        accounts or [],
        contacts or [],
        generation=RELOAD,
        read_at=read_at or utcnow(),
    ).encode()


def delta(
    accounts: list[AccountChange], contacts: list[ContactChange], *, read_at: datetime
) -> str:
    return Batch(
        "cycle-3", new_id(), LoadMode.DELTA, COLUMNS, accounts, contacts, read_at=read_at
    ).encode()


def sweep(entity_set: str, record_id: str) -> str:
    """The sweep of the partition that holds `record_id`, after the re-load."""
    return SweepBatch("cycle-2", new_id(), entity_set, bucket(record_id), RELOAD).encode()


def test_a_live_record_flagged_deleted_is_cleared_silently(services: Services) -> None:
    account_id = new_id()
    contacts = seed(services, account_id, 2)
    # What a sweep after a re-load whose batches did not apply left behind: every row flagged.
    apply_batch(services, sweep("accounts", account_id))
    for contact_id in contacts:
        apply_batch(services, sweep("contacts", contact_id))
    assert services.members.count(account_id) == 0
    flagged = services.accounts.get(account_id)
    assert flagged is not None and flagged["is_deleted"] is True

    # Applying them again, as Dynamics has them (the same versions), clears every flag.
    live = account(account_id, 1, name="Contoso", revenue=10.0, industrycode=1)
    result = apply_batch(services, reload([live], [contact(c, 1, account_id) for c in contacts]))
    assert (result.accounts_applied, result.contacts_applied, result.errors) == (1, 2, 0)
    assert result.activities_logged == 0  # nothing changed: no Change Data Value
    row = services.accounts.get(account_id)
    assert row is not None and row["is_deleted"] is False and "deleted_at" not in row
    assert fields_of(row) == {"name": "Contoso", "revenue": 10.0, "industrycode": 1}
    assert generation_of(row) == RELOAD
    for contact_id in contacts:
        mirrored = services.contacts.get(contact_id)
        assert mirrored is not None and mirrored["is_deleted"] is False
        assert "deleted_at" not in mirrored and mirrored["accountid"] == account_id
        assert services.activities.for_contact(contact_id) == []
    assert services.members.count(account_id) == 2  # back in their account


def test_an_account_flagged_deleted_is_cleared_by_a_delta_of_its_version(
    services: Services,
) -> None:
    account_id = new_id()
    seed(services, account_id, 1)
    apply_batch(services, sweep("accounts", account_id))
    same = account(account_id, 1, name="Contoso", revenue=10.0, industrycode=1)
    result = apply_batch(services, delta([same], [], read_at=utcnow()))
    assert (result.accounts_applied, result.activities_logged) == (1, 0)
    row = services.accounts.get(account_id)
    assert row is not None and row["is_deleted"] is False and "deleted_at" not in row


def test_a_row_a_reload_cannot_store_keeps_its_values_and_is_not_swept(
    services: Services,
) -> None:
    account_id = new_id()
    (contact_id,) = seed(services, account_id, 1)
    # 600,000 characters are 1.2 MB as UTF-16: more than a whole entity holds.
    huge = "x" * 600_000
    too_big = ContactChange(
        contact_id, 2, parent_id=account_id, parent_type="account", values={"fullname": huge}
    )
    result = apply_batch(services, reload([account(account_id, 2, name=huge)], [too_big]))
    assert result.errors == 2  # both are sync errors
    assert {e.record_id for e in services.errors.latest()} == {account_id, contact_id}

    apply_batch(services, sweep("accounts", account_id))
    apply_batch(services, sweep("contacts", contact_id))
    row = services.accounts.get(account_id)
    assert row is not None and row["is_deleted"] is False
    assert fields_of(row)["name"] == "Contoso"  # the last good value
    mirrored = services.contacts.get(contact_id)
    assert mirrored is not None and mirrored["is_deleted"] is False
    assert services.members.count(account_id) == 1


def test_a_batch_read_before_a_deletion_does_not_bring_the_record_back(
    services: Services,
) -> None:
    """A batch replayed from the poison queue after Dynamics deleted its records (and a delta
    flagged them) was read while they were live: it must not revive them, whatever their
    versions, nor log activities for a deleted account's contacts."""
    account_id = new_id()
    (contact_id,) = seed(services, account_id, 1)
    read_then = utcnow() - timedelta(minutes=5)
    deleted = delta(
        [AccountChange(account_id, None, deleted=True)],
        [ContactChange(contact_id, None, deleted=True)],
        read_at=utcnow(),
    )
    apply_batch(services, deleted)
    same = account(account_id, 1, name="Contoso", revenue=10.0, industrycode=1)
    newer = account(account_id, 2, name="Renamed", revenue=10.0, industrycode=1)
    for accounts, contacts in (
        ([same], [contact(contact_id, 1, account_id)]),
        ([newer], [contact(contact_id, 2, account_id)]),
    ):
        result = apply_batch(services, delta(accounts, contacts, read_at=read_then))
        assert result.activities_logged == 0
        row, mirrored = services.accounts.get(account_id), services.contacts.get(contact_id)
        assert row is not None and row["is_deleted"] is True
        assert mirrored is not None and mirrored["is_deleted"] is True
        assert services.members.count(account_id) == 0
    assert row is not None and fields_of(row)["name"] == "Renamed"  # its last values, kept
