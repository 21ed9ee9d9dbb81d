"""Re-reading named records from Dynamics and applying them as a cycle would
(shared/sync/reread.py), on Azurite against the simulator over HTTPS."""

from __future__ import annotations

import math
import uuid

import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import fields_of
from shared.services import Services, get_services, reset_services
from shared.sync.reread import GROUP_SIZE, reread_and_apply
from shared.sync.select_fields import select_fields
from tests.utils.helpers import TEST_ACTOR, make_account


def _entity_set_requests(simulator: SimulatorHandle, entity_set: str) -> list[dict[str, object]]:
    return [
        e
        for e in simulator.control.requests()
        if e["listener"] == "webapi" and str(e["path"]).endswith(f"/{entity_set}")
    ]


def test_a_missed_change_logs_what_the_cycle_would_and_no_delta_link_moves(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTIVITY_CONTACT_LIMIT", "2")
    reset_services()
    services = get_services()
    small_id, small_contacts = make_account(simulator, "Small", 2)
    large_id, large_contacts = make_account(simulator, "Large", 3)  # over the limit of 2
    run_cycle_now(services)
    links = {t: services.cursors.get(t) for t in ("accounts", "contacts")}
    simulator.control.update_account(small_id, {"name": "Small Ltd"})
    simulator.control.update_account(large_id, {"name": "Large Ltd"})

    outcome = reread_and_apply(
        services, services.dataverse(), "accounts", [small_id, large_id], origin="test"
    )
    assert (outcome.requested, outcome.applied, outcome.deleted, outcome.errors) == (2, 2, 0, 0)
    assert (outcome.activities_logged, outcome.activities_suppressed) == (2, 3)
    assert outcome.failed_ids == ()
    for contact_id in small_contacts:
        (activity,) = services.activities.for_contact(contact_id)
        assert (activity["field"], activity["old"], activity["new"]) == (
            "name",
            "Small",
            "Small Ltd",
        )
    assert all(services.activities.for_contact(c) == [] for c in large_contacts)
    row = services.accounts.get(large_id)
    assert row is not None and fields_of(row)["name"] == "Large Ltd"
    assert {t: services.cursors.get(t) for t in links} == links  # no delta link touched

    # The next cycle reads the same change through change tracking: nothing twice.
    after = run_cycle_now(services)
    assert after.activities_logged == 0
    assert all(len(services.activities.for_contact(c)) == 1 for c in small_contacts)


def test_ids_gone_from_dynamics_are_flagged_deleted_and_contacts_leave(
    simulator: SimulatorHandle, services: Services
) -> None:
    account_id, contacts = make_account(simulator, "Gone", 2)
    run_cycle_now(services)
    simulator.control.delete_account(account_id)  # its contacts go with it
    never_mirrored = str(uuid.uuid4())
    client = services.dataverse()

    gone_contacts = reread_and_apply(services, client, "contacts", contacts, origin="test")
    assert (gone_contacts.deleted, gone_contacts.applied) == (2, 0)
    assert services.members.count(account_id) == 0
    gone = reread_and_apply(
        services, client, "accounts", [account_id, never_mirrored], origin="test"
    )
    assert (gone.deleted, gone.unchanged, gone.failed_ids) == (1, 1, ())
    row = services.accounts.get(account_id)
    assert row is not None and row["is_deleted"] is True
    assert services.accounts.get(never_mirrored) is None
    contact = services.contacts.get(contacts[0])
    assert contact is not None and contact["is_deleted"] is True

    again = reread_and_apply(services, client, "accounts", [account_id], origin="test")
    assert (again.deleted, again.unchanged) == (0, 1)  # flagged already: nothing written


def test_a_mix_over_several_groups_takes_one_request_a_group(
    simulator: SimulatorHandle, services: Services
) -> None:
    count = 2 * GROUP_SIZE + 7
    ids = simulator.control.create_accounts([{"name": f"Account {n}"} for n in range(count)])
    run_cycle_now(services)
    changed = [ids[3], ids[GROUP_SIZE + 1], ids[-1]]  # one in each group
    for account_id in changed:
        simulator.control.update_account(account_id, {"name": "Changed"})
    simulator.control.delete_account(ids[GROUP_SIZE + 2])
    simulator.control.requests(clear=True)

    outcome = reread_and_apply(services, services.dataverse(), "accounts", ids, origin="test")
    assert len(_entity_set_requests(simulator, "accounts")) == math.ceil(count / GROUP_SIZE)
    assert outcome.requested == count
    assert (outcome.applied, outcome.deleted, outcome.errors) == (3, 1, 0)
    assert outcome.unchanged == count - 4
    for account_id in changed:
        row = services.accounts.get(account_id)
        assert row is not None and fields_of(row)["name"] == "Changed"


def test_an_unstorable_row_is_a_sync_error_and_a_failed_id(
    simulator: SimulatorHandle, services: Services
) -> None:
    select_fields(services, ["name", "new_longnotes"], actor=TEST_ACTOR)
    good_id, _ = make_account(simulator, "Good", 1)
    bad_id, _ = make_account(simulator, "Bad", 1)
    run_cycle_now(services)
    simulator.control.update_account(bad_id, {"new_longnotes": "x" * 600_000})
    simulator.control.update_account(good_id, {"name": "Good Ltd"})

    outcome = reread_and_apply(
        services, services.dataverse(), "accounts", [good_id, bad_id], origin="retry"
    )
    assert (outcome.applied, outcome.errors, outcome.failed_ids) == (1, 1, (bad_id,))
    (error,) = services.errors.latest()
    assert error.record_id == bad_id and error.code == "unstorable_value"
    assert error.cycle_id.startswith("retry-")
