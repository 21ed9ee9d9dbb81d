"""Real-org scale: a table planned over many heartbeats, a planner killed mid-table, re-loads
that find what Dynamics deleted, poisoned batches that show, and values that do not fit.

Small pages (ACCTSYNC_PAGE_SIZE, Dataverse's odata.maxpagesize) and a zero planning budget
(one page per heartbeat) make a few hundred rows behave as millions do: many pages, many
heartbeats, a checkpoint after each page.
"""

from __future__ import annotations

import random
import subprocess
import sys
from urllib.parse import urlsplit

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorError, SimulatorHandle
from shared.mirror.records import MirroredRecords
from shared.services import Services
from shared.sync.cycle import heartbeat, queue_backlog
from shared.sync.status import sync_status
from tests.faults.changes import change_dynamics, org_from_mirror
from tests.utils.faults import (
    ROOT,
    Figures,
    Oracle,
    assert_same_mirror,
    clean_cycle,
    counts,
    drain,
    run,
    services_for,
    sync_summary,
)
from tests.utils.helpers import live_ids, summary_of

PAGE = "50"


def small_pages(env: dict[str, str], *, budget: str = "0") -> dict[str, str]:
    return {**env, "ACCTSYNC_PAGE_SIZE": PAGE, "ACCTSYNC_PLAN_BUDGET_SECONDS": budget}


def test_a_load_planned_a_page_per_heartbeat_equals_a_load_in_one(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    twin: Services,
    env: dict[str, str],
    figures: Figures,
) -> None:
    simulator.control.reset(accounts=60, contacts=600, seed=51)
    paged = services_for(small_pages(env))
    try:
        clean_cycle(twin)
        first = run_cycle_now(paged)
        # 600 contacts and 60 accounts in pages of 50: 12 + 2 pages, a heartbeat each.
        assert first.planning_heartbeats >= 14
        assert (first.contacts_changed, first.accounts_changed) == (600, 60)
        assert first.status == "succeeded"
        assert_same_mirror(paged, twin)

        change_dynamics(
            simulator, org_from_mirror(twin), random.Random(7), size=40, tag="paged delta"
        )
        clean_cycle(twin)
        second = run_cycle_now(paged)
        assert second.planning_heartbeats >= 2
        shot = assert_same_mirror(paged, twin)  # activity for activity
        assert counts(shot)["activities"] > 0
        figures.record(
            "planning_in_pieces",
            page_size=int(PAGE),
            load_heartbeats=first.planning_heartbeats,
            delta_heartbeats=second.planning_heartbeats,
            equal_to_one_heartbeat_run=True,
        )
    finally:
        paged.close()
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def test_a_planner_killed_mid_table_goes_on_from_its_checkpoint(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    twin: Services,
    env: dict[str, str],
    figures: Figures,
) -> None:
    control = simulator.control
    control.reset(accounts=30, contacts=400, seed=52)
    # A lease long enough to be still held when the recovery starts, on a busy machine too.
    paged_env = {**small_pages(env, budget="600"), "ACCTSYNC_LEASE_SECONDS": "15"}
    clean_cycle(twin)
    control.requests(clear=True)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.faults.crashing_planner", "checkpointed:3"],
        cwd=ROOT,
        env=paged_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "killed at checkpointed:3" in killed.stdout, killed.stderr[-2000:]
    checkpoint = services.schedule.read().checkpoints["contacts"]
    assert (checkpoint.pages, checkpoint.rows_read) == (3, 150)
    read_before = [e for e in control.requests(clear=True) if "/contacts" in e["path"]]
    # The first page's request and two next links, and perhaps the fourth page, read ahead
    # while the third was sent (lost with the process; the checkpoint has its link).
    assert len(read_before) in (3, 4)

    recovery = run(["cycle"], paged_env)
    summary = sync_summary(recovery)
    # It said whose lease it waited for, and until when, then went on from the checkpoint.
    assert "lease is held by crashing-checkpointed:3 until 20" in recovery.stderr
    contact_requests = [e for e in control.requests() if "/contacts" in e["path"]]
    link = urlsplit(checkpoint.next_link)
    first = contact_requests[0]
    assert (first["path"], first["query"]) == (link.path, link.query)  # never the first page
    assert len(contact_requests) == 8 - 3  # pages 4 to 8 of the 400 rows
    assert queue_backlog(services) == 0
    shot = assert_same_mirror(services, twin)
    assert counts(shot)["activities"] == 0  # a first load logs nothing, killed or not
    figures.record(
        "planner_killed_mid_table",
        killed_after_pages=3,
        resumed_with_request=f"{first['path']}?{first['query'][:60]}...",
        pages_read_again=0,
        recovery_summary={k: summary[k] for k in ("status", "contacts_changed", "batches")},
        equal_to_clean_run=True,
    )
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def test_a_reload_after_an_expired_token_flags_exactly_what_was_deleted(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    env: dict[str, str],
    figures: Figures,
) -> None:
    control = simulator.control
    control.reset(accounts=40, contacts=400, seed=53)
    paged = services_for(small_pages(env))
    try:
        run_cycle_now(paged)
        org = org_from_mirror(paged)
        contacts_before, accounts_before = set(live_ids(paged.contacts)), set(org.accounts)
        rng = random.Random(3)
        for contact_id in rng.sample(sorted(org.parent), 25):
            control.delete_contact(contact_id)
        # An account's deletion takes its contacts (and theirs) with it, as in Dataverse.
        gone_account = rng.choice(org.accounts)
        control.delete_account(gone_account)
        renamed = rng.choice([a for a in org.accounts if a != gone_account])
        control.update_account(renamed, {"name": "Renamed while the token was stale"})
        control.expire_delta_tokens()
        gone_contacts = {c for c in contacts_before if not _exists(simulator, "contact", c)}
        gone_accounts = {a for a in accounts_before if not _exists(simulator, "account", a)}
        assert gone_accounts == {gone_account} and len(gone_contacts) >= 25

        summary = run_cycle_now(paged)
        assert summary.modes == {"contacts": "reload", "accounts": "reload"}
        assert _flagged(paged.contacts) == gone_contacts
        assert _flagged(paged.accounts) == gone_accounts
        assert summary.deleted == len(gone_contacts) + len(gone_accounts)
        members = {contact for _, contact in paged.members.all()}
        assert not members & gone_contacts  # the deleted contacts left their accounts
        # Only the value that changed logged activities: the renamed account's live contacts.
        live = [c for c in org.contacts_of(renamed) if c not in gone_contacts]
        assert summary.activities_logged == len(live)
        figures.record(
            "reload_sweep",
            rows_deleted_in_dynamics=len(gone_contacts) + len(gone_accounts),
            flagged_by_the_sweep=summary.deleted,
            exactly_those=True,
            activities_logged=summary.activities_logged,
        )
    finally:
        paged.close()
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def _exists(simulator: SimulatorHandle, table: str, row_id: str) -> bool:
    read = simulator.control.get_account if table == "account" else simulator.control.get_contact
    try:
        read(row_id)
    except SimulatorError:
        return False
    return True


def _flagged(records: MirroredRecords) -> set[str]:
    return {
        str(row["RowKey"])
        for row in records.table.list_entities(select=["RowKey", "is_deleted"])
        if row.get("is_deleted")
    }


def test_a_failed_planning_step_drains_before_any_new_cycle(
    oracle: Oracle, simulator: SimulatorHandle, services: Services
) -> None:
    control = simulator.control
    control.reset(accounts=10, contacts=80, seed=54)
    run_cycle_now(services)
    org = org_from_mirror(services)
    change_dynamics(simulator, org, random.Random(5), size=5, tag="before a failure")
    planned = heartbeat(services, owner="faults", force=True)
    assert (planned.action, planned.step) == ("planned", "contacts")
    # The contacts' batches wait on the queue while the accounts step fails for good:
    # Dataverse throttles every request, past the client's eight tries.
    control.set_limits(retry_after_s=1)
    control.inject_faults(rate_429=1.0)
    assert queue_backlog(services) > 0
    # The contacts are applied before accounts are read: this heartbeat waits for them.
    assert heartbeat(services, owner="faults", force=True).action == "waiting"
    drain(services)
    failed = heartbeat(services, owner="faults", force=True)
    assert failed.action == "failed" and "kept throttling" in (failed.error or "")
    control.clear_faults()
    closed = heartbeat(services, owner="faults", force=True)
    assert closed.action == "finished" and summary_of(closed).status == "failed"
    status = sync_status(services)
    last = status.last_failure
    assert status.failures_in_a_row == 1 and last is not None and last.step == "accounts"
    summary = run_cycle_now(services)
    assert summary.status == "succeeded" and summary.accounts_changed > 0
    oracle.verify(services)  # faults over: the mirror equals Dynamics
