"""`acctsync verify` under faults: a verify whose host is killed mid-way goes on from its last
checkpoint and ends with the result of a verify never interrupted, at the same cost in
Dataverse requests; a verify whose Dataverse requests fail for good ends with `error` saying
what to do, and the cycles go on.

Each kill is a real process SIGKILLed right after a checkpoint of the verify (see
crashing_verifier.py); the lease it leaves runs out after ACCTSYNC_LEASE_SECONDS.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from acctsync.runner import run_cycle_now, run_verify_now
from acctsync.sim.harness import SimulatorHandle
from shared.dataverse.client import DataverseClient, RetryPolicy
from shared.mirror.records import bucket
from shared.mirror.row import version_property
from shared.services import Services, get_services, reset_services
from shared.state.schedule import Phase
from shared.state.verify import VerifyResult
from shared.sync.cycle import Action, heartbeat
from shared.verify.requests import request_verify
from tests.utils.faults import ROOT, Figures, scale
from tests.utils.helpers import TEST_ACTOR

LEASE_S = "1"
PAGE_SIZE = "5"


@pytest.fixture
def paged(services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Pages of 5 rows, so that a small org takes many checkpoints; a 1 s lease after a kill."""
    monkeypatch.setenv("ACCTSYNC_PAGE_SIZE", PAGE_SIZE)
    monkeypatch.setenv("ACCTSYNC_LEASE_SECONDS", LEASE_S)
    reset_services()
    return get_services()


def plant_drift(services: Services) -> set[tuple[str, str]]:
    """Three records the mirror has wrong: a contact lost, one flagged deleted, an account
    whose version went back."""
    contacts = [e["RowKey"] for e in services.contacts.table.list_entities(select=["RowKey"])]
    lost, flagged = sorted(contacts)[:2]
    services.contacts.table.delete_entity(bucket(lost), lost)
    services.contacts.table.update_entity(
        {"PartitionKey": bucket(flagged), "RowKey": flagged, "is_deleted": True},
        mode=UpdateMode.MERGE,
    )
    account = sorted(e["RowKey"] for e in services.accounts.table.list_entities(select=["RowKey"]))
    rolled = services.accounts.get(account[0])
    assert rolled is not None
    older = version_property(rolled["version"].value - 1)
    services.accounts.table.update_entity(
        {"PartitionKey": bucket(account[0]), "RowKey": account[0], "version": older},
        mode=UpdateMode.MERGE,
    )
    return {(lost, "missing"), (flagged, "wrongly_deleted"), (account[0], "stale")}


def crash(checkpoints: int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.crashing_verifier", str(checkpoints)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)
    return done.stdout.strip().removeprefix(f"killed at checkpoint {checkpoints}: ")


def web_requests(simulator: SimulatorHandle) -> int:
    return sum(1 for e in simulator.control.requests(clear=True) if e["listener"] == "webapi")


def finish(services: Services, verify_id: str) -> VerifyResult:
    """Heartbeats here until the verify `verify_id` has finished (a dead host's lease first
    runs out)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        heartbeat(services, owner="recovering")
        last = services.verifies.last()
        if last is not None and last.id == verify_id:
            return last
        time.sleep(0.2)
    raise AssertionError(f"verify {verify_id} did not finish")


def comparable(result: VerifyResult) -> dict[str, Any]:
    body = result.to_json()
    body["sample_drift"] = sorted((d["id"], d["kind"]) for d in body["sample_drift"])
    keep = ("drift", "drift_left", "by_kind", "by_table", "checked", "pending", "sample_drift")
    return {k: body[k] for k in (*keep, "error", "dataverse_requests")}


@pytest.mark.no_oracle("it plants drift on purpose, for the verifies it kills to find")
def test_a_verify_killed_mid_way_goes_on_from_its_checkpoint(
    simulator: SimulatorHandle, paged: Services, figures: Figures
) -> None:
    accounts, contacts = scale(20, 400), scale(60, 4000)
    simulator.control.reset(accounts=accounts, contacts=contacts, seed=7)
    assert run_cycle_now(paged).status == "succeeded"
    planted = plant_drift(paged)
    simulator.control.requests(clear=True)

    request, _ = request_verify(paged, repair=False, deep=False, actor=TEST_ACTOR)
    # Each a new host, dead after its 4th / 12th checkpoint: in two different stages.
    killed_at = [crash(4), crash(12)]
    assert len(set(killed_at)) == 2, killed_at
    running = paged.verifies.running()
    assert running is not None and running.id == request.id
    interrupted = finish(paged, request.id)
    sent_interrupted = web_requests(simulator)

    clean = run_verify_now(paged, repair=False, deep=False)
    sent_clean = web_requests(simulator)
    assert {(d.id, d.kind.value) for d in clean.samples} == planted
    assert comparable(interrupted) == comparable(clean)
    # Gone on from the checkpoints: not a page read twice, none started over.
    assert sent_interrupted == sent_clean == clean.dataverse_requests
    assert paged.schedule.read().phase is Phase.IDLE
    figures.record(
        "verify_sigkill",
        accounts=accounts,
        contacts=contacts,
        killed_at=killed_at,
        dataverse_requests=sent_clean,
        equal_to_uninterrupted=True,
    )


def test_a_verify_whose_dataverse_requests_fail_ends_with_what_to_do_and_cycles_go_on(
    simulator: SimulatorHandle, paged: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator.control.reset(accounts=5, contacts=20, seed=3)
    assert run_cycle_now(paged).status == "succeeded"
    # Two attempts a request, quickly: failing for good takes a second, not minutes.
    quick = RetryPolicy(max_attempts=2, backoff_base_s=0.01, backoff_cap_s=0.05)
    client = DataverseClient(paged.settings.require_dataverse(), retry=quick)
    monkeypatch.setattr(paged, "_dataverse", client)

    # Mid-way: one heartbeat reads a page and checkpoints, then Dataverse fails for good.
    request, _ = request_verify(paged, repair=True, deep=False, actor=TEST_ACTOR)
    monkeypatch.setattr(paged, "settings", replace(paged.settings, plan_budget_seconds=0.0))
    assert heartbeat(paged, owner="test").action is Action.VERIFYING
    monkeypatch.undo()
    monkeypatch.setattr(paged, "_dataverse", client)
    simulator.control.inject_faults(rate_5xx=1.0)
    try:
        outcome = heartbeat(paged, owner="test")
    finally:
        simulator.control.clear_faults()
    assert outcome.action is Action.VERIFIED
    failed = paged.verifies.last()
    assert failed is not None and failed.id == request.id
    assert failed.error and "Fix: run `acctsync verify` again" in failed.error
    assert "acctsync validate" in failed.error
    status = paged.verifies.running(), paged.verifies.requested(), paged.schedule.read().phase
    assert status == (None, None, Phase.IDLE)
    # It does not count as verified: the overdue alert keeps counting.
    assert paged.verifies.last_clean_at() is None

    # Nothing waits on it: the next cycle runs, and the next verify starts over and finishes.
    assert run_cycle_now(paged).status == "succeeded"
    again = run_verify_now(paged, repair=False, deep=False)
    assert (again.error, again.drift_left) == (None, 0)
    assert paged.verifies.last_clean_at() is not None
