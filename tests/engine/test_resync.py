"""Quick Sync and Advanced Sync of one account column under a running sync: Dynamics' values
back over local edits and stale values, nulls included, without activities; a range touches
only its accounts and leaves the change-tracking chain alone; re-sync chunks and normal cycles
take turns without losing a change; a column being re-synced cannot be deselected."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import read_column
from shared.services import Services, get_services, reset_services
from shared.state.resync_queue import ResyncStatus, new_resync
from shared.state.schedule import LoadMode
from shared.times import utcnow
from tests.utils.faults import run
from tests.utils.helpers import make_account


def value(services: Services, account_id: str, column: str) -> Any:
    row = services.accounts.get(account_id)
    assert row is not None
    return read_column(row, column)


def edit(api: httpx.Client, contact_id: str, **fields: Any) -> None:
    response = api.patch(f"/api/contacts/{contact_id}/account", json={"fields": fields})
    assert response.status_code == 200, response.text


def activity_count(services: Services, contacts: list[str]) -> int:
    return sum(len(services.activities.for_contact(c)) for c in contacts)


def resyncs(api: httpx.Client) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = api.get("/api/sync/status").json()["resyncs"]
    return listed


def test_quick_sync_restores_local_edits_and_nulls_without_activities(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 2, telephone1="555-0100")
    run_cycle_now(services)  # Marketo's default columns: telephone1 and description among them
    edit(api, contacts[0], telephone1="555-9999", description="Called, no answer")
    assert value(services, account_id, "description") == "Called, no answer"
    logged = activity_count(services, contacts)  # the edits' own activities

    queued = api.post("/api/sync/resync", json={"field": "telephone1"})
    assert queued.status_code == 202, queued.text
    assert (queued.json()["kind"], queued.json()["status"]) == ("quick", "queued")
    # The CLI asks the same; asking again while queued is the same request.
    done = run(["resync", "description"], dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["field"] == "description"
    again = api.post("/api/sync/resync", json={"field": "telephone1"}).json()
    assert (again["id"], again["queued"]) == (queued.json()["id"], False)

    cycles = [run_cycle_now(services), run_cycle_now(services)]  # one re-sync per cycle
    assert [c.resync_refreshed for c in cycles] == [1, 1]
    assert value(services, account_id, "telephone1") == "555-0100"
    assert value(services, account_id, "description") is None  # Dynamics has none
    assert activity_count(services, contacts) == logged
    assert all(c.activities_logged == 0 for c in cycles)
    view = api.get(f"/api/accounts/{account_id}").json()
    assert view["locally_modified"] == []
    finished = {r["field"]: r for r in resyncs(api)}
    assert {r["status"] for r in finished.values()} == {"finished"}
    assert finished["telephone1"]["refreshed"] == 1 and finished["telephone1"]["finished_at"]


def test_advanced_sync_touches_only_the_range_and_leaves_the_chain_alone(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    old_id, old_contacts = make_account(
        simulator, "Old", 1, telephone1="1", createdon="2020-01-01T00:00:00Z"
    )
    new_id, new_contacts = make_account(
        simulator, "New", 1, telephone1="2", createdon="2025-06-01T00:00:00Z"
    )
    run_cycle_now(services)
    for account_id, contact in ((old_id, old_contacts[0]), (new_id, new_contacts[0])):
        edit(api, contact, telephone1="local")
        assert value(services, account_id, "telephone1") == "local"
    # Both were modified when created (now): only createdon tells them apart.
    control.update_account(old_id, {"modifiedon": "2020-01-02T00:00:00Z"})
    control.update_account(new_id, {"modifiedon": "2025-06-02T00:00:00Z"})
    run_cycle_now(services)  # the two changes above overwrite the edits; edit again
    for contact in (old_contacts[0], new_contacts[0]):
        edit(api, contact, telephone1="local")
    control.requests(clear=True)

    bad = api.post(
        "/api/sync/resync",
        json={
            "field": "telephone1",
            "modified_since": "2025-12-31T00:00:00Z",
            "modified_until": "2025-01-01T00:00:00Z",
        },
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_range")
    ranged = api.post(
        "/api/sync/resync",
        json={
            "field": "telephone1",
            "modified_since": "2025-01-01T00:00:00Z",
            "modified_until": "2025-12-31T23:59:59Z",
        },
    )
    assert ranged.status_code == 202 and ranged.json()["kind"] == "advanced"
    control.update_account(old_id, {"name": "Old, renamed"})  # a change for the chain
    cycle = run_cycle_now(services)
    assert cycle.modes["accounts"] == LoadMode.DELTA.value and cycle.resync_refreshed == 1
    assert value(services, new_id, "telephone1") == "2"
    assert value(services, old_id, "name") == "Old, renamed"  # the delta went on as ever
    assert value(services, old_id, "telephone1") == "1"  # overwritten by its own change
    queries = [unquote_plus(r["query"] or "") for r in control.requests()]
    [ranged_query] = [q for q in queries if q.startswith("$select=accountid")]
    assert "$filter=(modifiedon ge 2025-01-01T00:00:00Z and modifiedon le" in ranged_query
    assert "or (createdon ge 2025-01-01T00:00:00Z" in ranged_query
    edit(api, old_contacts[0], telephone1="local")
    after = run_cycle_now(services)  # the chain goes on from its delta link
    assert after.modes["accounts"] == "delta" and after.accounts_changed == 0
    assert value(services, old_id, "telephone1") == "local"  # outside the range: untouched


def test_resync_and_cycles_take_turns_without_losing_changes(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = simulator.control
    accounts = [make_account(simulator, f"A{i}", 1, telephone1=f"{i}") for i in range(12)]
    # Pages of 3 and no planning budget: the re-sync reads one page per cycle.
    monkeypatch.setenv("ACCTSYNC_PAGE_SIZE", "3")
    monkeypatch.setenv("ACCTSYNC_PLAN_BUDGET_SECONDS", "0")
    reset_services()
    paged = get_services()
    run_cycle_now(paged)
    request = paged.resyncs.add(new_resync("telephone1", now=utcnow(), by="test"))
    changed: dict[str, str] = {}
    cycles = []
    for turn in range(8):
        # Dynamics keeps changing meanwhile: each change is applied, with its activity.
        account_id, _ = accounts[turn]
        changed[account_id] = f"new {turn}"
        control.update_account(account_id, {"telephone1": f"new {turn}"})
        cycles.append(run_cycle_now(paged))
        if (paged.resyncs.get(request.id) or request).status is ResyncStatus.FINISHED:
            break
    assert len(cycles) >= 4  # 12 accounts in pages of 3: the re-sync took turns with cycles
    assert all(c.status == "succeeded" for c in cycles)
    assert sum(c.accounts_changed for c in cycles) == len(cycles)  # each change once
    for earlier, later in itertools.pairwise(cycles):
        assert earlier.finished_at and later.started_at  # both stamped
        assert earlier.finished_at <= later.started_at  # never overlapping
    for index, (account_id, contacts) in enumerate(accounts):
        assert value(paged, account_id, "telephone1") == changed.get(account_id, f"{index}")
        logged = [a for c in contacts for a in paged.activities.for_contact(c)]
        assert len(logged) == (1 if account_id in changed else 0)
    finished = paged.resyncs.get(request.id)
    assert finished is not None and finished.rows_read == 12


def test_a_column_being_resynced_cannot_be_deselected(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    account_id, contacts = make_account(simulator, "Contoso", 1, telephone1="555-0100")
    assert api.put("/api/sync/fields", json={"selected": ["name", "telephone1"]}).is_success
    run_cycle_now(services)
    assert api.put("/api/sync/fields", json={"selected": ["name"]}).is_success
    control.update_account(account_id, {"telephone1": "555-0199"})  # not synced now
    run_cycle_now(services)
    assert value(services, account_id, "telephone1") == "555-0100"  # kept, stale

    # Selected again it is backfilled (select_fields.py); a Quick Sync of it queued meanwhile keeps
    # it selected until done.
    assert api.put("/api/sync/fields", json={"selected": ["name", "telephone1"]}).is_success
    assert api.post("/api/sync/resync", json={"field": "telephone1"}).status_code == 202
    [quick] = resyncs(api)
    assert (quick["field"], quick["kind"], quick["status"]) == ("telephone1", "quick", "queued")
    refused = api.put("/api/sync/fields", json={"selected": ["name"]})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "field_resync_pending")
    assert "telephone1" in refused.json()["error"]["message"]
    cli = run(["fields", "select", "name"], dict(os.environ))
    assert cli.returncode != 0 and "cannot be deselected" in cli.stderr
    logged = activity_count(services, contacts)
    cycle = run_cycle_now(services)
    assert value(services, account_id, "telephone1") == "555-0199"
    assert cycle.activities_logged == 0 and activity_count(services, contacts) == logged
    assert resyncs(api)[0]["status"] == "finished"
    assert api.put("/api/sync/fields", json={"selected": ["name"]}).is_success


class _ChangeWhenResyncReads:
    """A progress that changes an account in Dynamics the moment the re-sync starts reading:
    after the cycle applied the accounts, before the re-sync's page is read and applied."""

    def __init__(self, simulator: SimulatorHandle, account_id: str) -> None:
        self.simulator, self.account_id, self.done_once = simulator, account_id, False

    def started(self, entity_set: str, mode: LoadMode, *, total: int | None, done: int) -> None:
        if entity_set.endswith("re-sync") and not self.done_once:
            self.done_once = True
            self.simulator.control.update_account(self.account_id, {"telephone1": "racing"})

    def read(self, entity_set: str, rows: int) -> None: ...
    def queued_before(self, batches: int) -> None: ...
    def enqueued(self, batches: int, records: int) -> None: ...
    def batch_applied(self) -> None: ...
    def done(self) -> None: ...


def test_a_change_made_while_a_resync_reads_is_applied_with_its_activity(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 2, telephone1="555-0100")
    other_id, others = make_account(simulator, "Fabrikam", 1, telephone1="555-0200")
    run_cycle_now(services)
    edit(api, others[0], telephone1="local")
    assert api.post("/api/sync/resync", json={"field": "telephone1"}).status_code == 202
    racing = _ChangeWhenResyncReads(simulator, account_id)
    first = run_cycle_now(services, progress=racing)  # type: ignore[arg-type]
    assert racing.done_once and first.resync_refreshed == 1  # Fabrikam's edit undone
    assert value(services, other_id, "telephone1") == "555-0200"
    # Read newer than the mirror: left to the next cycle, which applies it as a change.
    assert value(services, account_id, "telephone1") == "555-0100"
    second = run_cycle_now(services)
    assert value(services, account_id, "telephone1") == "racing"
    assert second.activities_logged == len(contacts)
    logged = [a for c in contacts for a in services.activities.for_contact(c)]
    assert {(a["old"], a["new"]) for a in logged} == {("555-0100", "racing")}
