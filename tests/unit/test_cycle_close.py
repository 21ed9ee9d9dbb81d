"""Closing a cycle (shared/sync/close.py) and its summary's JSON: pure, no storage, no server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.state.results import BatchResult, ChangeLag, CycleStatus, CycleTotals, StageTotals
from shared.state.schedule import (
    Checkpoint,
    CyclePlan,
    CycleState,
    Failure,
    LoadMode,
    Phase,
    Step,
    TablePlan,
)
from shared.state.summary import CycleSummary
from shared.sync.close import close_cycle, retry_at

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STARTED = NOW - timedelta(minutes=10)
LAST_APPLIED = NOW - timedelta(minutes=2)
INTERVAL = 5.0

# Every key a finished cycle's JSON has had, in its order (CONTRACT: `last_cycles`, the CLI).
SUMMARY_KEYS = [
    "cycle_id",
    "status",
    "started_at",
    "finished_at",
    "accounts_changed",
    "contacts_changed",
    "batches",
    "batches_applied",
    "batches_poisoned",
    "batches_missing",
    "missing_batches",
    "sweeps_skipped",
    "accounts_applied",
    "contacts_applied",
    "skipped",
    "deleted",
    "accounts_filtered",
    "resync",
    "resync_refreshed",
    "activities_logged",
    "activities_suppressed",
    "errors",
    "modes",
    "restarted",
    "backfill",
    "unreadable_fields",
    "dataverse_requests",
    "dataverse_throttled",
    "planning_heartbeats",
    "stages",
    "change_lag_s",
]


def applying(*, batches: int = 2, reload: bool = False) -> CycleState:
    """A cycle whose contacts and accounts were read into `batches` batches, now applied."""
    mode = LoadMode.RELOAD if reload else LoadMode.DELTA
    tables = {
        "contacts": TablePlan(mode, changed=3, first_batch=1, last_batch=1),
        "accounts": TablePlan(mode, changed=2, first_batch=2, last_batch=batches),
    }
    return CycleState(
        phase=Phase.APPLYING,
        step=Step.ACCOUNTS,
        cycle_id="20261201T115000-abcdef01",
        started_at=STARTED,
        plan=CyclePlan(tables=tables, batches=batches, errors=1, heartbeats=3),
        checkpoints={
            "contacts": Checkpoint(mode, select="name", next_link="https://next/contacts")
        },
        failures_in_a_row=2,
        succeeded_at=STARTED - timedelta(hours=1),
    )


def applied(*batch_ids: str) -> CycleTotals:
    result = BatchResult(accounts_applied=2, contacts_applied=3, activities_logged=4, errors=1)
    stage = StageTotals(result, batches=len(batch_ids), last_applied_at=LAST_APPLIED)
    return CycleTotals(
        result,
        set(batch_ids),
        set(),
        LAST_APPLIED,
        stages={"accounts": stage},
        lag=ChangeLag(2, 3.0, 2.5),
    )


def failure(*, needs_action: bool) -> Failure:
    return Failure(NOW, Step.CONTACTS, "it failed", "the fix", needs_action=needs_action)


def test_every_batch_applied_is_a_success_due_an_interval_after_the_last_batch() -> None:
    closed = close_cycle(applying(), applied("000001", "000002"), now=NOW, interval_minutes=5)
    summary, state = closed.summary, closed.state
    assert summary.status is CycleStatus.SUCCEEDED and closed.missing == ()
    assert (summary.accounts_changed, summary.contacts_changed, summary.batches) == (2, 3, 2)
    assert summary.errors == 2  # the planning's error and the applied batches'
    assert summary.finished_at == LAST_APPLIED
    assert summary.duration_s == (LAST_APPLIED - STARTED).total_seconds()
    assert (state.phase, state.step, state.lease_owner) == (Phase.IDLE, None, "")
    assert state.next_due == LAST_APPLIED + timedelta(minutes=INTERVAL)
    assert state.interval_minutes == INTERVAL and state.plan == CyclePlan()
    assert (state.succeeded_at, state.failures_in_a_row) == (LAST_APPLIED, 0)
    assert state.checkpoints == applying().checkpoints


def test_a_batch_that_did_not_apply_is_named_and_makes_the_cycle_incomplete() -> None:
    closed = close_cycle(applying(batches=3), applied("000001"), now=NOW, interval_minutes=5)
    summary = closed.summary
    assert summary.status is CycleStatus.INCOMPLETE
    assert closed.missing == ("000002", "000003") == summary.missing_batches
    assert (summary.batches_missing, summary.batches_poisoned) == (2, 2)
    assert summary.errors == 1 + 1 + 2
    assert closed.state.succeeded_at == LAST_APPLIED  # incomplete is not a failure


def test_a_reload_whose_batches_did_not_apply_keeps_its_chain_from_sweeping() -> None:
    closed = close_cycle(applying(reload=True), applied("000002"), now=NOW, interval_minutes=5)
    why = closed.state.checkpoints["contacts"].unapplied
    assert "000001" in why and "the sweep is skipped" in why


def test_a_skipped_sweep_makes_the_cycle_incomplete() -> None:
    state = applying()
    state.plan.tables["contacts"].sweep_skipped = "a batch of the re-load did not apply"
    closed = close_cycle(state, applied("000001", "000002"), now=NOW, interval_minutes=5)
    assert closed.summary.status is CycleStatus.INCOMPLETE
    assert closed.summary.sweeps_skipped == {"contacts": "a batch of the re-load did not apply"}


def test_a_failed_cycle_ends_now_and_is_retried_a_minute_later() -> None:
    state = replace(applying(), failure=failure(needs_action=False))
    closed = close_cycle(state, applied("000001", "000002"), now=NOW, interval_minutes=5)
    summary, finished = closed.summary, closed.state
    assert summary.status is CycleStatus.FAILED and summary.failure == state.failure
    assert summary.finished_at == NOW and finished.finished_at == NOW
    assert finished.next_due == NOW + timedelta(minutes=1)
    assert finished.interval_minutes is None and finished.failure is None
    assert finished.failures_in_a_row == 3
    assert finished.succeeded_at == state.succeeded_at


def test_a_failure_that_needs_action_is_retried_an_interval_later_at_least_a_minute() -> None:
    assert retry_at(failure(needs_action=True), NOW, 30) == NOW + timedelta(minutes=30)
    assert retry_at(failure(needs_action=True), NOW, 0.25) == NOW + timedelta(minutes=1)


def test_any_other_failure_is_retried_a_minute_later() -> None:
    assert retry_at(failure(needs_action=False), NOW, 30) == NOW + timedelta(minutes=1)


def test_the_summary_json_keeps_its_keys_and_reads_back() -> None:
    state = replace(applying(), failure=failure(needs_action=True))
    summary = close_cycle(state, applied("000001"), now=NOW, interval_minutes=5).summary
    data = summary.to_json()
    assert list(data) == [*SUMMARY_KEYS, "failure", "duration_s"]
    assert data["status"] == "failed" and data["modes"] == {
        "contacts": "delta",
        "accounts": "delta",
    }
    assert data["missing_batches"] == ["000002"] and data["started_at"] == "2026-12-01T11:50:00Z"
    assert data["change_lag_s"] == {"rows": 2, "mean_s": 1.5, "max_s": 2.5}
    assert data["stages"] == [
        {
            "stage": "accounts",
            "table": "accounts",
            "started_at": "2026-12-01T11:50:00Z",
            "ended_at": "2026-12-01T11:58:00Z",
            "duration_s": 480.0,
            "batches": 1,
            "new": 0,
            "updated": 5,
            "deleted": 0,
            "failed": 1,
            "skipped": 0,
            "activities_logged": 4,
            "activities_suppressed": 0,
        }
    ]
    assert CycleSummary.from_text(summary.to_text()).to_json() == data


def test_a_summary_an_older_version_stored_reads_with_defaults() -> None:
    old = CycleSummary.from_json({"cycle_id": "c1", "status": "succeeded", "batches": 4})
    assert (old.cycle_id, old.status, old.batches) == ("c1", CycleStatus.SUCCEEDED, 4)
    assert old.stages == () and old.modes == {} and old.failure is None
    assert old.duration_s is None and "duration_s" not in old.to_json()
