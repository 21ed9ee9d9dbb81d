"""Closing a cycle whose batches are all applied or lost: a pure decision, no I/O.

From the cycle's state, its batch results added up and the time, it says how the cycle ended
(succeeded, incomplete, failed), its summary, and the state the schedule stores next: idle,
due again an interval after its last batch was applied (a failed one sooner, to retry), with
the checkpoints a later cycle goes on from. shared/sync/cycle.py stores it and does the
housekeeping around it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.state.results import CycleStatus, CycleTotals
from shared.state.schedule import (
    Checkpoint,
    CyclePlan,
    CycleState,
    Failure,
    LoadMode,
    Phase,
    batch_id,
)
from shared.state.summary import CycleSummary, LagSummary, stage_summaries
from shared.sync.planner import sweep_blocked

RETRY_AFTER_FAILURE = timedelta(minutes=1)
# The ids of the batches that did not apply a cycle's summary names, at most.
MISSING_NAMED = 100


@dataclass(frozen=True)
class ClosedCycle:
    """A closed cycle: the state to store, its summary, and the batches that did not apply."""

    state: CycleState
    summary: CycleSummary
    missing: tuple[str, ...]


def close_cycle(
    state: CycleState, totals: CycleTotals, *, now: datetime, interval_minutes: float
) -> ClosedCycle:
    """Close `state`'s cycle. It succeeded only if every batch it enqueued was applied: one
    that was not is in the poison queue (whether or not its last attempt could record that)
    and is named, and the re-load chain it belongs to does not sweep."""
    missing = totals.unapplied(batch_id(n) for n in range(1, state.plan.batches + 1))
    status = _status(state, missing)
    # The pause runs from the moment the last batch was applied, not from when this noticed.
    ended = (
        totals.last_applied_at
        if totals.last_applied_at and status is not CycleStatus.FAILED
        else now
    )
    failure = state.failure
    finished = replace(
        state,
        phase=Phase.IDLE,
        step=None,
        lease_owner="",
        lease_until=None,
        finished_at=ended,
        next_due=retry_at(failure, now, interval_minutes)
        if failure
        else ended + timedelta(minutes=interval_minutes),
        interval_minutes=None if failure else interval_minutes,
        plan=CyclePlan(),
        checkpoints=_unapplied_chains(state, missing),
        failure=None,
        failures_in_a_row=state.failures_in_a_row + 1 if failure else 0,
        succeeded_at=state.succeeded_at if failure else ended,
    )
    summary = _summary(state, totals, status, missing, ended=ended)
    return ClosedCycle(finished, summary, tuple(missing))


def _status(state: CycleState, missing: list[str]) -> CycleStatus:
    if state.failure:
        return CycleStatus.FAILED
    # A skipped sweep leaves rows Dynamics deleted unflagged: the mirror does not equal it.
    if missing or any(t.sweep_skipped for t in state.plan.tables.values()):
        return CycleStatus.INCOMPLETE
    return CycleStatus.SUCCEEDED


def _summary(
    state: CycleState,
    totals: CycleTotals,
    status: CycleStatus,
    missing: list[str],
    *,
    ended: datetime,
) -> CycleSummary:
    plan, result = state.plan, totals.result
    return CycleSummary(
        cycle_id=state.cycle_id,
        status=status,
        started_at=state.started_at,
        finished_at=ended,
        accounts_changed=plan.changed("accounts"),
        contacts_changed=plan.changed("contacts"),
        dataverse_requests=plan.dataverse_requests,
        dataverse_throttled=plan.dataverse_throttled,
        planning_heartbeats=plan.heartbeats,
        modes={name: table.mode for name, table in plan.tables.items()},
        restarted={n: t.restarted for n, t in plan.tables.items() if t.restarted},
        backfill=tuple(plan.backfill),
        unreadable_fields=tuple(plan.unreadable_fields),
        batches=plan.batches,
        batches_applied=totals.batches_applied,
        batches_poisoned=len(missing),
        batches_missing=len(missing),
        missing_batches=tuple(missing[:MISSING_NAMED]),
        sweeps_skipped={n: t.sweep_skipped for n, t in plan.tables.items() if t.sweep_skipped},
        accounts_applied=result.accounts_applied,
        contacts_applied=result.contacts_applied,
        skipped=result.skipped,
        deleted=result.deleted,
        accounts_filtered=result.filtered,
        resync=plan.resync or None,
        resync_refreshed=result.refreshed,
        activities_logged=result.activities_logged,
        activities_suppressed=result.activities_suppressed,
        errors=plan.errors + result.errors + len(missing),
        stages=stage_summaries(totals, state.started_at),
        change_lag_s=LagSummary.of(totals.lag),
        failure=state.failure,
        duration_s=round((ended - state.started_at).total_seconds(), 3)
        if state.started_at
        else None,
    )


def _unapplied_chains(state: CycleState, missing: list[str]) -> dict[str, Checkpoint]:
    """The checkpoints the next cycle goes on from: a re-load chain some of whose batches of
    this (failed) cycle did not apply must not sweep when a later cycle ends it."""
    checkpoints = dict(state.checkpoints)
    unapplied = set(missing)
    for name, checkpoint in state.checkpoints.items():
        table = state.plan.tables.get(name)
        if checkpoint.mode is not LoadMode.RELOAD or checkpoint.unapplied or table is None:
            continue
        lost = [b for b in table.batch_ids() if b in unapplied]
        if lost:
            why = sweep_blocked(name, state.cycle_id, lost)
            checkpoints[name] = replace(checkpoint, unapplied=why)
    return checkpoints


def retry_at(failure: Failure, now: datetime, interval_minutes: float) -> datetime:
    """A failure that needs someone to act is tried again a whole interval later (at least
    the retry delay); any other a minute later."""
    if failure.needs_action:
        return now + max(RETRY_AFTER_FAILURE, timedelta(minutes=interval_minutes))
    return now + RETRY_AFTER_FAILURE
