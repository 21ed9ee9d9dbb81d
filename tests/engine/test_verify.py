"""`acctsync verify`: the mirror compared with Dynamics record by record, against the
simulator over HTTPS and Azurite; drift planted on purpose is found exactly and repaired with
exactly the activities a cycle would have logged."""

from __future__ import annotations

import math

import httpx
import pytest
from azure.data.tables import UpdateMode

from acctsync.runner import run_cycle_now, run_verify_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import read_column
from shared.mirror.records import bucket
from shared.mirror.row import version_property
from shared.services import Services, get_services, reset_services
from shared.state.schedule import Phase
from shared.sync.cycle import Action, heartbeat
from shared.sync.edits import edit_account_through_contact
from shared.sync.select_fields import select_fields
from shared.verify.requests import request_verify
from tests.utils.helpers import TEST_ACTOR, make_account, settle


def webapi_requests(simulator: SimulatorHandle) -> list[dict[str, object]]:
    return [e for e in simulator.control.requests() if e["listener"] == "webapi"]


def activities(services: Services, contacts: list[str]) -> list[dict[str, object]]:
    return [a for c in contacts for a in services.activities.for_contact(c)]


@pytest.fixture
def paged(services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Pages of 3 rows, so that small tables take several."""
    monkeypatch.setenv("ACCTSYNC_PAGE_SIZE", "3")
    reset_services()
    return get_services()


def test_a_clean_mirror_has_no_drift_and_costs_its_pages_only(
    simulator: SimulatorHandle, paged: Services
) -> None:
    for n in range(3):
        make_account(simulator, f"Account {n}", 3)
    settle()
    assert run_cycle_now(paged).status == "succeeded"
    simulator.control.requests(clear=True)
    result = run_verify_now(paged, repair=False, deep=False)
    body = result.to_json()
    assert (body["drift"], body["drift_left"], body["error"]) == (0, 0, None)
    assert body["checked"] == {"contacts": 9, "accounts": 3}
    assert body["by_kind"] == dict.fromkeys(
        ["missing", "wrongly_deleted", "not_deleted", "stale", "wrong_account"], 0
    )
    # Plain paging of each table and nothing else: ceil(rows / page size) per table.
    expected = math.ceil(9 / 3) + math.ceil(3 / 3)
    sent = webapi_requests(simulator)
    assert len(sent) == expected == body["dataverse_requests"]
    assert all("deltatoken" not in str(e["query"]) for e in sent)
    assert paged.schedule.read().phase is Phase.IDLE


def test_planted_drift_is_found_exactly_and_repaired_like_a_cycle(
    simulator: SimulatorHandle, services: Services
) -> None:
    control = simulator.control
    accounts = [make_account(simulator, f"Account {n}", 2) for n in range(5)]
    (_, c0), (a1, c1), (a2, c2), (a3, c3), (_, c4) = accounts
    settle()
    run_cycle_now(services)
    # A record Dynamics deleted, whose deletion flag the mirror then lost.
    control.delete_contact(c4[1])
    # A change Dynamics made that the delta link never returned.
    control.update_untracked("accounts", a1, {"name": "Renamed quietly"})
    settle()
    run_cycle_now(services)
    contacts, mirror_accounts = services.contacts.table, services.accounts.table

    def merge(table: object, record_id: str, **values: object) -> None:
        entity = {"PartitionKey": bucket(record_id), "RowKey": record_id, **values}
        table.update_entity(entity, mode=UpdateMode.MERGE)  # type: ignore[attr-defined]

    merge(contacts, c4[1], is_deleted=False)  # not_deleted
    contacts.delete_entity(bucket(c0[0]), c0[0])  # missing
    merge(contacts, c2[0], is_deleted=True)  # wrongly_deleted
    merge(contacts, c3[0], accountid=a2)  # wrong_account
    version = services.accounts.get(a3)["version"].value  # type: ignore[index]
    merge(mirror_accounts, a3, version=version_property(version - 1))  # stale (rolled back)
    planted = {
        ("contacts", c4[1], "not_deleted"),
        ("contacts", c0[0], "missing"),
        ("contacts", c2[0], "wrongly_deleted"),
        ("contacts", c3[0], "wrong_account"),
        ("accounts", a3, "stale"),
        ("accounts", a1, "stale"),
    }

    found = run_verify_now(services, repair=False, deep=False).to_json()
    assert {(d["table"], d["id"], d["kind"]) for d in found["sample_drift"]} == planted
    assert found["by_kind"] == {
        "missing": 1,
        "wrongly_deleted": 1,
        "not_deleted": 1,
        "stale": 2,
        "wrong_account": 1,
    }
    assert (found["drift"], found["drift_left"], found["pending"]) == (6, 6, 0)
    assert set(found["samples"]) == {p[1] for p in planted}

    all_contacts = [c for _, cs in accounts for c in cs]
    before = len(activities(services, all_contacts))
    repaired = run_verify_now(services, repair=True, deep=False).to_json()
    assert (repaired["drift"], repaired["repaired"], repaired["drift_left"]) == (6, 6, 0)
    # Exactly what the missed change would have logged: its field, on each of its contacts.
    assert len(activities(services, all_contacts)) - before == 2
    renamed = [a for c in c1 for a in services.activities.for_contact(c)]
    assert [(a["field"], a["new"]) for a in renamed] == [("name", "Renamed quietly")] * 2
    mirrored = services.accounts.get(a1)
    assert mirrored is not None and read_column(mirrored, "name") == "Renamed quietly"
    assert services.contacts.get(c4[1])["is_deleted"] is True  # type: ignore[index]
    assert services.contacts.get(c3[0])["accountid"] == a3  # type: ignore[index]
    again = run_verify_now(services, repair=False, deep=False).to_json()
    assert (again["drift"], again["drift_left"]) == (0, 0)


def test_changes_after_the_last_read_are_pending_and_the_filter_is_no_drift(
    simulator: SimulatorHandle, services: Services
) -> None:
    control = simulator.control
    kept_out, _ = make_account(simulator, "Kept out", 1, new_synctomkto=False)
    first, first_contacts = make_account(simulator, "First", 2)
    settle()
    run_cycle_now(services)
    assert services.accounts.get(kept_out) is None
    # After the cycle read the tables: a change, a new record, a deletion.
    control.update_account(first, {"name": "Changed since"})
    control.create_contacts([{"lastname": "New", "parentcustomerid": first}])
    control.delete_contact(first_contacts[0])
    result = run_verify_now(services, repair=False, deep=False).to_json()
    assert (result["drift"], result["pending"]) == (0, 3), result
    assert result["pending_by_table"] == {"contacts": 2, "accounts": 1}
    # The next cycle takes them: nothing is pending any more, and nothing drifted.
    settle()
    run_cycle_now(services)
    after = run_verify_now(services, repair=False, deep=False).to_json()
    assert (after["drift"], after["pending"]) == (0, 0)
    assert after["checked"] == {"contacts": 3, "accounts": 1}  # the one kept out is not in


def test_deep_finds_values_changed_in_the_mirror_only_and_not_local_edits(
    simulator: SimulatorHandle, services: Services
) -> None:
    select_fields(services, ["name", "revenue"], actor=TEST_ACTOR)
    changed, _ = make_account(simulator, "Changed", 1)
    edited, edited_contacts = make_account(simulator, "Edited", 1)
    settle()
    run_cycle_now(services)
    entity = {"PartitionKey": bucket(changed), "RowKey": changed, "f_revenue": 5.0}
    services.accounts.table.update_entity(entity, mode=UpdateMode.MERGE)
    edit_account_through_contact(services, edited_contacts[0], {"name": "Edited locally"})

    shallow = run_verify_now(services, repair=False, deep=False).to_json()
    assert shallow["drift"] == 0 and "values" not in shallow["by_kind"]
    deep = run_verify_now(services, repair=False, deep=True).to_json()
    assert deep["by_kind"]["values"] == 1 and deep["drift"] == 1
    assert deep["sample_drift"] == [{"table": "accounts", "id": changed, "kind": "values"}]
    repaired = run_verify_now(services, repair=True, deep=True).to_json()
    assert (repaired["repaired"], repaired["drift_left"]) == (1, 0)
    assert read_column(services.accounts.get(changed) or {}, "revenue") == 1000.0
    # The local edit stays until Dynamics changes the account.
    assert read_column(services.accounts.get(edited) or {}, "name") == "Edited locally"


def test_a_verify_checkpoints_over_heartbeats_and_a_due_cycle_waits_for_it(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):
        make_account(simulator, f"Account {n}", 2)
    settle()
    run_cycle_now(services)
    # Pages of 2 and no budget: each heartbeat reads one page (or one round of partitions).
    monkeypatch.setenv("ACCTSYNC_PAGE_SIZE", "2")
    monkeypatch.setenv("ACCTSYNC_PLAN_BUDGET_SECONDS", "0")
    reset_services()
    paged = get_services()
    cycle_before = paged.schedule.read().cycle_id
    request, queued = request_verify(paged, repair=False, deep=False, actor=TEST_ACTOR)
    assert queued
    beats = []
    while True:
        beat = heartbeat(paged, owner="test")
        beats.append(beat.action)
        # SYNC_INTERVAL_MINUTES is 0: a cycle is due all along, and waits.
        assert paged.schedule.read().cycle_id == cycle_before
        if beat.action is Action.VERIFIED:
            break
        assert beat.action is Action.VERIFYING
        assert paged.schedule.read().phase is Phase.VERIFYING
        assert len(beats) < 100
    assert len(beats) > 5
    result = paged.verifies.last()
    assert result is not None and result.id == request.id
    assert (result.drift, result.to_json()["checked"]) == (0, {"contacts": 6, "accounts": 3})
    # Then the cycle that was due starts.
    assert heartbeat(paged, owner="test").action in (Action.FINISHED, Action.PLANNED)
    assert paged.schedule.read().cycle_id != cycle_before


def test_api_starts_a_verify_and_answers_its_result(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    make_account(simulator, "Contoso", 2)
    settle()
    run_cycle_now(services)
    assert api.get("/api/sync/verify").json() == {"status": "never"}
    refused = api.post("/api/sync/verify", json={"repair": "sometimes"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_body"
    started = api.post("/api/sync/verify", json={"repair": True})
    assert started.status_code == 202, started.text
    request = started.json()
    assert (request["repair"], request["deep"], request["queued"]) == (True, False, True)
    again = api.post("/api/sync/verify")  # asked for already: the same one
    assert (again.status_code, again.json()["id"], again.json()["queued"]) == (
        202,
        request["id"],
        False,
    )
    status = api.get("/api/sync/status").json()["verify"]
    assert status["requested"]["id"] == request["id"] and status["last"] is None
    # The next heartbeats (the timer's) run it.
    while heartbeat(services, owner="timer").action is not Action.VERIFIED:
        pass
    result = api.get("/api/sync/verify").json()
    assert (result["status"], result["id"], result["drift"]) == ("finished", request["id"], 0)
    assert result["checked"] == {"contacts": 2, "accounts": 1}
    status = api.get("/api/sync/status").json()["verify"]
    assert (status["last"]["id"], status["requested"], status["running"]) == (
        request["id"],
        None,
        None,
    )
