"""Whole cycles on Azurite against the Dataverse simulator, over real HTTPS with msal."""

from __future__ import annotations

import os
import threading
import time

import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from acctsync.worker import QueueWorker
from shared.mirror.records import fields_of
from shared.services import Services
from shared.state.cursors import Cursor
from shared.storage import BATCH_QUEUE
from shared.sync.batches import Batch
from shared.sync.cycle import Action, heartbeat, queue_backlog
from shared.sync.select_fields import select_fields
from shared.sync.status import sync_status
from tests.utils.faults import services_for
from tests.utils.helpers import TEST_ACTOR, make_account


def test_initial_load_then_incremental_change(
    simulator: SimulatorHandle, services: Services
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 3)
    other_id, _ = make_account(simulator, "Fabrikam", 2)
    first = run_cycle_now(services)
    assert (first.accounts_changed, first.contacts_changed) == (2, 5)
    assert first.activities_logged == 0  # a first load logs nothing
    row = services.accounts.get(account_id)
    assert row is not None and fields_of(row)["name"] == "Contoso"
    assert services.members.count(account_id) == 3

    simulator.control.update_account(account_id, {"name": "Contoso Ltd"})
    second = run_cycle_now(services)
    assert (second.accounts_changed, second.contacts_changed) == (1, 0)
    assert second.activities_logged == 3
    (activity,) = services.activities.for_contact(contacts[0])
    assert (activity["field"], activity["old"], activity["new"]) == (
        "name",
        "Contoso",
        "Contoso Ltd",
    )
    assert services.activities.for_contact(services.members.first(other_id, 1)[0]) == []


def test_idle_cycle_reads_the_columns_and_the_two_delta_links(
    simulator: SimulatorHandle, services: Services
) -> None:
    """Three requests: both tables' metadata at once (columns that come and go), then each
    table's delta link; nothing else, not even the grants of the secured columns selected."""
    make_account(simulator, "Contoso", 2)
    simulator.control.set_column_read("app", "creditlimit", True)  # secured, now granted
    select_fields(services, ["name", "creditlimit"], actor=TEST_ACTOR)
    run_cycle_now(services)
    simulator.control.requests(clear=True)
    idle = run_cycle_now(services)
    assert (idle.accounts_changed, idle.contacts_changed, idle.batches) == (0, 0, 0)
    assert idle.dataverse_requests == 3
    sent = [e for e in simulator.control.requests() if e["listener"] == "webapi"]
    assert [e["path"].rsplit("/", 1)[-1] for e in sent] == [
        "EntityDefinitions",
        "contacts",
        "accounts",
    ]


def test_deletes_moves_and_contact_parents(simulator: SimulatorHandle, services: Services) -> None:
    first_id, first_contacts = make_account(simulator, "First", 2)
    second_id, second_contacts = make_account(simulator, "Second", 1)
    run_cycle_now(services)
    moving = first_contacts[0]
    simulator.control.update_contact(
        moving, {"parentcustomerid": second_id, "parentcustomertype": "account"}
    )
    simulator.control.update_contact(
        first_contacts[1], {"parentcustomerid": second_contacts[0], "parentcustomertype": "contact"}
    )
    simulator.control.delete_account(first_id)
    run_cycle_now(services)
    assert services.members.count(second_id) == 2
    assert services.members.count(first_id) == 0
    child = services.contacts.get(first_contacts[1])
    assert child is not None and child["accountid"] == ""
    deleted = services.accounts.get(first_id)
    assert deleted is not None and deleted["is_deleted"] is True
    assert fields_of(deleted)["name"] == "First"  # kept, flagged


def test_activity_threshold_at_5000_and_5001_contacts(
    simulator: SimulatorHandle, services: Services
) -> None:
    at_limit, _ = make_account(simulator, "At limit", 5000)
    over_limit, over_contacts = make_account(simulator, "Over limit", 5001)
    run_cycle_now(services)
    simulator.control.update_account(at_limit, {"name": "At limit, renamed"})
    simulator.control.update_account(over_limit, {"name": "Over limit, renamed"})
    summary = run_cycle_now(services)
    assert summary.activities_logged == 5000
    assert summary.activities_suppressed == 5001
    row = services.accounts.get(over_limit)
    assert row is not None and fields_of(row)["name"] == "Over limit, renamed"
    assert services.activities.for_contact(over_contacts[0]) == []


def test_crash_before_cursor_commit_rereads_without_duplicates(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    simulator.control.update_account(account_id, {"name": "Renamed"})

    commit = services.cursors.commit

    def crash(cursor: Cursor) -> None:
        if cursor.entity_set == "accounts":
            raise RuntimeError("crash between enqueue and cursor commit")
        commit(cursor)

    with monkeypatch.context() as patch:
        patch.setattr(services.cursors, "commit", crash)
        failed = heartbeat(services, owner="crashing", force=True)
    assert failed.action is Action.FAILED and "crash between" in (failed.error or "")
    # The failed cycle's batch is in the queue, its cursor did not move: the failed cycle
    # closes once the batch is applied, the next one re-reads the same change, and the two
    # batches together apply it once.
    assert queue_backlog(services) == 1
    summary = run_cycle_now(services)
    assert summary.accounts_changed == 1
    (closed, *_) = services.history.latest(2)[1:]
    assert closed.status == "failed"
    assert closed.failure is not None and "crash between" in closed.failure.message
    for contact_id in contacts:
        assert len(services.activities.for_contact(contact_id)) == 1


def test_two_heartbeats_at_once_start_one_cycle(
    simulator: SimulatorHandle, services: Services
) -> None:
    make_account(simulator, "Contoso", 1)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def beat(owner: str) -> None:
        barrier.wait()
        outcomes.append(heartbeat(services, owner=owner).action)

    threads = [threading.Thread(target=beat, args=(f"host-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("planned") == 1


def test_429_storm_with_retry_after(simulator: SimulatorHandle, services: Services) -> None:
    simulator.control.reset(accounts=200, contacts=2000, seed=7)
    simulator.control.set_limits(retry_after_s=1)
    simulator.control.inject_faults(rate_429=0.4, seed=3, count=6)
    summary = run_cycle_now(services)
    assert (summary.accounts_changed, summary.contacts_changed) == (200, 2000)
    assert summary.dataverse_throttled >= 1
    statuses = [r["status"] for r in simulator.control.requests()]
    assert 429 in statuses


def test_token_expiry_mid_run(simulator: SimulatorHandle, services: Services) -> None:
    account_id, _ = make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    simulator.control.expire_tokens()
    simulator.control.update_account(account_id, {"name": "After expiry"})
    summary = run_cycle_now(services)
    assert summary.accounts_changed == 1
    assert 401 in [r["status"] for r in simulator.control.requests()]


def test_expired_delta_token_reloads_without_duplicate_activities(
    simulator: SimulatorHandle, services: Services
) -> None:
    kept_id, kept_contacts = make_account(simulator, "Kept", 2)
    changed_id, changed_contacts = make_account(simulator, "Changed", 2)
    gone_id, _ = make_account(simulator, "Gone", 0)
    run_cycle_now(services)
    simulator.control.expire_delta_tokens()
    simulator.control.update_account(changed_id, {"name": "Changed again"})
    simulator.control.delete_account(gone_id)
    summary = run_cycle_now(services)
    assert summary.modes["accounts"] == "reload"
    assert summary.activities_logged == 2  # only the real change, once per contact
    assert all(services.activities.for_contact(c) == [] for c in kept_contacts)
    assert all(len(services.activities.for_contact(c)) == 1 for c in changed_contacts)
    gone = services.accounts.get(gone_id)
    assert gone is not None and gone["is_deleted"] is True
    kept = services.accounts.get(kept_id)
    assert kept is not None and not kept["is_deleted"]


def test_acctsync_only_reads_from_dynamics(simulator: SimulatorHandle, services: Services) -> None:
    account_id, _ = make_account(simulator, "Contoso", 2)
    simulator.control.requests(clear=True)
    run_cycle_now(services)
    simulator.control.update_account(account_id, {"name": "Renamed"})
    run_cycle_now(services)
    requests = simulator.control.requests()
    assert requests
    for request in requests:
        if "/api/data/" in request["path"]:
            assert request["method"] == "GET", request
        else:
            assert request["path"].endswith(("/token", "/openid-configuration")), request


def test_a_contact_moving_in_the_cycle_of_its_new_accounts_change_gets_that_activity(
    simulator: SimulatorHandle, services: Services
) -> None:
    old_id, old_contacts = make_account(simulator, "Old", 2)
    new_id, new_contacts = make_account(simulator, "New", 1)
    run_cycle_now(services)
    moving = old_contacts[0]
    simulator.control.update_contact(
        moving, {"parentcustomerid": new_id, "parentcustomertype": "account"}
    )
    simulator.control.update_account(new_id, {"name": "New, renamed"})
    simulator.control.update_account(old_id, {"name": "Old, renamed"})

    # The cycle's first stage enqueues the contact only; the accounts wait until it is applied.
    assert heartbeat(services, owner="test", force=True).action == "planned"
    queued = services.storage.queue(BATCH_QUEUE).peek_messages(max_messages=32)
    batches = [Batch.decode(m.content) for m in queued]
    assert [len(b.contacts) for b in batches] == [1] and not batches[0].accounts
    assert sync_status(services).current_stage == "contacts"
    assert heartbeat(services, owner="test").action == "waiting"

    summary = run_cycle_now(services)
    assert (summary.accounts_changed, summary.contacts_changed) == (2, 1)
    assert summary.activities_logged == 3  # New: its 2 contacts now; Old: the one it kept
    (moved,) = services.activities.for_contact(moving)
    assert (moved["accountid"], moved["new"]) == (new_id, "New, renamed")
    (stayed,) = services.activities.for_contact(old_contacts[1])
    assert stayed["new"] == "Old, renamed"
    assert len(services.activities.for_contact(new_contacts[0])) == 1


def test_the_pause_runs_from_the_last_batch_applied(
    simulator: SimulatorHandle, services: Services
) -> None:
    """SYNC_INTERVAL_MINUTES after the last batch of a cycle was applied, the next cycle starts
    at the first heartbeat: never an interval counted from when a heartbeat noticed."""
    interval_s, tick_s = 6.0, 2.0
    paced = services_for({**os.environ, "SYNC_INTERVAL_MINUTES": str(interval_s / 60)})
    account_id, _ = make_account(simulator, "Paced", 3)
    applied: list[float] = []
    worker = QueueWorker(paced)
    worker.on_event = lambda event, _: applied.append(time.time()) if event == "applied" else None
    stop = threading.Event()
    applier = threading.Thread(target=worker.serve, args=(stop,), kwargs={"idle_wait_s": 0.05})
    applier.start()
    starts: dict[str, float] = {}  # cycle id -> when the heartbeat that started it began
    try:
        deadline = time.monotonic() + 40
        changes = 0
        while time.monotonic() < deadline:
            began = time.time()
            outcome = heartbeat(paced, owner="ticks")
            if outcome.action in ("planned", "checkpointed"):
                starts.setdefault(outcome.cycle_id, began)
            if outcome.action == "finished":  # something to apply in every cycle
                changes += 1
                simulator.control.update_account(account_id, {"name": f"Paced {changes}"})
            time.sleep(tick_s)
    finally:
        stop.set()
        applier.join()
    begun = sorted(starts.values())
    assert len(begun) >= 3
    # From the last batch of one cycle to the heartbeat that started the next.
    gaps = [start - max(t for t in applied if t < start) for start in begun[1:]]
    assert all(interval_s - 0.5 <= gap <= interval_s + tick_s + 0.5 for gap in gaps), gaps
    paced.close()
