"""The sync cycle: each heartbeat moves it on by one decision, under a lease.

A cycle reads each table's changes from where its chain stands, enqueues them as batches, and
only then commits the table's new delta link; a heartbeat plans for a bounded time and leaves
the rest to the next one, which goes on from the checkpoint (shared/sync/planner.py). It does
so in steps, contacts first: their batches are applied before the accounts are even read, so an
account change fans out to the contacts the account has after this cycle's moves, whatever
order the workers take the messages in (one step for both would let a contact that moves get
the old or the new account's activities by chance). A table read again in full is followed by
a sweep that flags the rows it no longer has. A step that enqueues nothing goes straight on to
the next. The cycle finishes when every batch of its last step has been applied, and the next
one is due SYNC_INTERVAL_MINUTES after the last batch was applied. A planning step that fails
leaves its checkpoint for the next cycle; the cycle closes as failed once what it enqueued has
been applied, so two cycles never overlap.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core.exceptions import AzureError

from shared import telemetry
from shared.dataverse.client import DataverseClient
from shared.mirror.initial import synced_stream
from shared.services import Services
from shared.state.errors import ErrorCode
from shared.state.results import BatchResult, CycleStatus, CycleTotals
from shared.state.schedule import (
    Checkpoint,
    CyclePlan,
    CycleState,
    Failure,
    LoadMode,
    Phase,
    Step,
    batch_id,
)
from shared.state.verify import VerifyRequest, VerifyRows, VerifyTrigger
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE, POISON_QUEUE
from shared.sync.apply.context import feed_identity
from shared.sync.claims import ClaimStore
from shared.sync.failures import explain
from shared.sync.lease import CycleLease, LeaseLost
from shared.sync.planner import Progress, StepOutcome, TablePlanner, plan_sweep, sweep_blocked
from shared.sync.readers import AccountReader, ContactReader, RowErrors, TableReader
from shared.sync.resync import cycle_finished
from shared.sync.resync_planner import ResyncPlanner
from shared.sync.schema import CycleColumns, check_columns, store_unreadable
from shared.times import iso, utcnow
from shared.verify.requests import unverified_for, wanted_verify
from shared.verify.step import VerifyAction, VerifyStep

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = timedelta(minutes=1)
VERIFY_STEP = "verify"  # what a heartbeat of a verify names as its step
# Audit entries past their retention one cycle removes: the trail of a busy year goes in a
# few cycles, and no cycle's housekeeping takes long.
AUDIT_REMOVED_PER_CYCLE = 1000


class Action(StrEnum):
    PLANNED = "planned"  # a step was planned whole; its batches are on the queue
    CHECKPOINTED = "checkpointed"  # the budget ran out; the next heartbeat goes on
    FINISHED = "finished"
    FAILED = "failed"  # planning failed; the cycle closes once its batches are applied
    WAITING = "waiting"  # batches are still being applied
    IDLE = "idle"  # no cycle is due
    BUSY = "busy"  # another heartbeat holds the lease
    PAUSED = "paused"  # `acctsync pause`: no cycle or step starts
    VERIFYING = "verifying"  # a verify went on and checkpointed (shared/verify/step.py)
    VERIFIED = "verified"  # a verify finished; `summary` is its result


class _NoProgress:
    def started(self, entity_set: str, mode: LoadMode, *, total: int | None, done: int) -> None:
        pass

    def read(self, entity_set: str, rows: int) -> None:
        pass

    def enqueued(self, batches: int, records: int) -> None:
        pass


_default_progress: Progress = _NoProgress()


def report_progress_to(progress: Progress) -> None:
    """Where heartbeats without a progress of their own report (the local host's terminal)."""
    global _default_progress
    _default_progress = progress


_stop_planning = threading.Event()


def stop_planning_on(event: threading.Event) -> None:
    """A host that is stopping sets `event`: a heartbeat planning then ends at the next page,
    checkpointed and with its lease given back, so the next start goes on at once."""
    global _stop_planning
    _stop_planning = event


@dataclass
class Heartbeat:
    """What one heartbeat did."""

    action: Action
    cycle_id: str = ""
    step: str | None = None
    backlog: int = 0
    next_due: str | None = None
    lease_owner: str = ""
    lease_until: str | None = None
    error: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    started: bool = False  # this heartbeat began the cycle


def heartbeat(
    services: Services,
    *,
    owner: str,
    force: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
    beat_every_s: float | None = None,
) -> Heartbeat:
    """One tick: finish the running cycle's step when its batches are applied, go on with a
    step left at a checkpoint, or start a cycle that is due. A host's timer passes how often it
    beats (`beat_every_s`): the beat is recorded, so status can tell when the host is down."""
    now = now or utcnow()
    if beat_every_s is not None:
        services.liveness.beat(at=now, every_s=beat_every_s)
        # What the "host down" alert watches: a dead host sends none.
        telemetry.count("acctsync.heartbeats", 1)
    state = services.schedule.read()
    verify_rows = services.verifies.rows()  # one query for every verify question below
    _observe(services, state, now, verify_rows)
    lease = timedelta(seconds=services.settings.lease_seconds)
    # Paused: what is queued is applied and a cycle whose last step is applied finishes, but
    # no cycle and no step starts (a step left at a checkpoint waits there).
    paused = services.pauses.get() is not None
    if state.phase is Phase.APPLYING:
        backlog = queue_backlog(services)
        if backlog:
            return Heartbeat(Action.WAITING, state.cycle_id, _step(state), backlog=backlog)
        step = None if state.failure else next_step(state.step, state.plan)
        if step is None:
            summary = finish_cycle(services, state, now=now)
            if summary is None:
                return Heartbeat(Action.BUSY, state.cycle_id)
            return Heartbeat(Action.FINISHED, state.cycle_id, summary=summary)
        if paused:
            return Heartbeat(Action.PAUSED, state.cycle_id, step.value)
        taken = services.schedule.take(state, owner=owner, now=now, lease=lease, step=step)
    elif state.phase is Phase.PLANNING:
        if state.lease_held(now):
            return _busy(state)
        if paused:
            return Heartbeat(Action.PAUSED, state.cycle_id, _step(state))
        taken = services.schedule.take(
            state, owner=owner, now=now, lease=lease, step=state.step or Step.CONTACTS
        )
    elif state.phase is Phase.VERIFYING:
        return _verify(services, state, owner=owner, now=now, paused=paused)
    else:
        wanted = (
            None if force else wanted_verify(services, state, now, paused=paused, rows=verify_rows)
        )
        if wanted is not None:  # between cycles, so that the two never overlap
            return _verify(services, state, owner=owner, now=now, paused=paused, start=wanted)
        if paused:
            return Heartbeat(Action.PAUSED, state.cycle_id)
        due = _due(services, state, now)
        if not force and due > now:
            return Heartbeat(Action.IDLE, state.cycle_id, next_due=iso(due))
        taken = services.schedule.start(state, owner=owner, now=now, lease=lease)
    if taken is None:
        return _busy(services.schedule.read())
    outcome = _plan(services, CycleLease(services.schedule, taken, duration=lease), progress)
    outcome.started = state.phase is Phase.IDLE
    return outcome


def _observe(services: Services, state: CycleState, now: datetime, rows: VerifyRows) -> None:
    if state.succeeded_at is not None:
        # What the "sync is down" alert watches: it grows until a cycle succeeds again.
        since = (now - state.succeeded_at).total_seconds()
        telemetry.observe("acctsync.since_last_success_s", max(since, 0.0))
    # What the "poison messages waiting" alert watches.
    telemetry.observe("acctsync.poison_backlog", queue_backlog(services, POISON_QUEUE))
    unverified = unverified_for(services, state, now, rows)
    if unverified is not None:  # what the "mirror not verified" alert watches
        telemetry.observe("acctsync.since_last_verify_s", unverified.total_seconds())


def _verify(
    services: Services,
    state: CycleState,
    *,
    owner: str,
    now: datetime,
    paused: bool,
    start: VerifyRequest | None = None,
) -> Heartbeat:
    """Start the verify `start`, or go on with the one under way, under the cycle row's lease
    (a cycle that falls due meanwhile waits for it). A scheduled verify waits while paused; one
    asked for goes on."""
    if state.lease_held(now):
        return _busy(state)
    verifying = start or services.verifies.running()
    if paused and verifying is not None and verifying.trigger is VerifyTrigger.SCHEDULED:
        return Heartbeat(Action.PAUSED, state.cycle_id, VERIFY_STEP)
    lease = timedelta(seconds=services.settings.lease_seconds)
    taken = services.schedule.take(state, owner=owner, now=now, lease=lease, phase=Phase.VERIFYING)
    if taken is None:
        return _busy(services.schedule.read())
    if start is not None:
        services.verifies.start(start)
    cycle_lease = CycleLease(services.schedule, taken, duration=lease)
    outcome = VerifyStep(services, cycle_lease, stop=_stop_planning).run()
    if outcome.action is VerifyAction.BUSY:
        return _busy(services.schedule.read())
    if outcome.action is VerifyAction.CHECKPOINTED:
        summary = {"verify_id": outcome.verify_id}
        return Heartbeat(Action.VERIFYING, state.cycle_id, VERIFY_STEP, summary=summary)
    summary = outcome.result.to_json() if outcome.result is not None else {}
    return Heartbeat(Action.VERIFIED, state.cycle_id, VERIFY_STEP, summary=summary)


def next_step(step: Step | None, plan: CyclePlan) -> Step | None:
    """The step after `step`, None when the cycle is done."""

    def reloaded(entity_set: str) -> bool:
        table = plan.tables.get(entity_set)
        return table is not None and table.mode is LoadMode.RELOAD

    if step is Step.CONTACTS:
        return Step.CONTACTS_SWEEP if reloaded("contacts") else Step.ACCOUNTS
    if step is Step.CONTACTS_SWEEP:
        return Step.ACCOUNTS
    if step is Step.ACCOUNTS and reloaded("accounts"):
        return Step.ACCOUNTS_SWEEP
    if step in (Step.ACCOUNTS, Step.ACCOUNTS_SWEEP) and plan.resync:
        # After the accounts are applied: a re-sync compares against the newest versions.
        return Step.RESYNC
    return None


def queue_backlog(services: Services, queue: str = BATCH_QUEUE) -> int:
    return services.storage.queue_length(queue)


def _due(services: Services, state: CycleState, now: datetime) -> datetime:
    """When the next cycle may start; counted again when the interval setting changed (a
    failed cycle's retry keeps its own time)."""
    interval = services.settings.sync_interval_minutes
    counted_with = state.interval_minutes
    if state.finished_at is not None and counted_with is not None and counted_with != interval:
        return state.finished_at + timedelta(minutes=interval)
    return state.next_due or now


def _busy(state: CycleState) -> Heartbeat:
    return Heartbeat(
        Action.BUSY,
        state.cycle_id,
        _step(state),
        lease_owner=state.lease_owner,
        lease_until=iso(state.lease_until),
    )


def _step(state: CycleState) -> str | None:
    return state.step.value if state.step else None


def _plan(services: Services, lease: CycleLease, progress: Progress | None) -> Heartbeat:
    """Plan steps from the lease's one until the budget runs out or a step enqueued batches."""
    steps = _Steps(services, lease, progress or _default_progress)
    cycle_id = lease.state.cycle_id
    with telemetry.span("acctsync.cycle", attributes={"cycle_id": cycle_id}):
        with lease.kept():
            outcome = steps.run()
        if outcome is not None:
            return outcome
        # The last step enqueued nothing and every earlier one is applied: the cycle is done
        # now (an idle cycle is one heartbeat). The lease keeper has stopped: nothing races.
        summary = finish_cycle(services, lease.state, now=utcnow())
        if summary is None:
            return _busy(services.schedule.read())
        return Heartbeat(Action.FINISHED, cycle_id, summary=summary)


class _Steps:
    """The steps one heartbeat plans, under its lease, within its budget."""

    def __init__(self, services: Services, lease: CycleLease, progress: Progress):
        self.services = services
        self.lease = lease
        self.progress = progress
        self.deadline = time.monotonic() + services.settings.plan_budget_seconds
        self.client: DataverseClient | None = None
        self.columns: CycleColumns | None = None
        self._sent_before = (0, 0)
        lease.state.plan.heartbeats += 1

    def run(self) -> Heartbeat | None:
        """How the heartbeat ended; None when the cycle has nothing left to apply."""
        lease, cycle_id = self.lease, self.lease.state.cycle_id
        plan = lease.state.plan
        try:
            # Inside: a client that cannot even start (settings, authority) is a failure too.
            self.client = self.services.dataverse()
            self._sent_before = (self.client.stats.requests, self.client.stats.throttled)
            while True:
                step = lease.state.step or Step.CONTACTS
                outcome = self._run_step(step)
                if not outcome.done:
                    lease.release(plan=self._counted())
                    _log_planned(cycle_id, step, plan, "checkpointed")
                    return Heartbeat(Action.CHECKPOINTED, cycle_id, step.value)
                following = next_step(step, plan)
                if outcome.enqueued:
                    lease.release(phase=Phase.APPLYING, plan=self._counted())
                    _log_planned(cycle_id, step, plan, "planned")
                    return Heartbeat(Action.PLANNED, cycle_id, step.value, summary=asdict(plan))
                if following is None:
                    lease.stage(plan=self._counted())
                    return None
                lease.write(step=following, plan=plan)
        except LeaseLost as lost:
            logger.warning("cycle %s: %s; the heartbeat that took it over goes on", cycle_id, lost)
            return _busy(self.services.schedule.read())
        except Exception as error:
            return _failed(self.services, lease, error, self._counted())

    def _run_step(self, step: Step) -> StepOutcome:
        assert self.client is not None
        services, lease = self.services, self.lease
        if step.is_sweep:
            return StepOutcome(True, plan_sweep(services, lease, step.entity_set, self.progress))
        if self.columns is None:  # once a heartbeat, before its first read
            self.columns = check_columns(services, self.client)
        if step is Step.RESYNC:
            return ResyncPlanner(
                services,
                self.client,
                lease,
                self.columns.account,
                deadline=self.deadline,
                progress=self.progress,
                stop=_stop_planning,
            ).run()
        errors = RowErrors(services.errors, lease.state.cycle_id)
        reader: TableReader
        if step is Step.CONTACTS:
            access = self.columns.contact
            reader = ContactReader(access, errors)
        else:
            access = self.columns.account
            reader = AccountReader(access, errors, self.columns.sync_filter)
            lease.state.plan.backfill = list(reader.backfill)
            resync = services.resyncs.current()
            lease.state.plan.resync = resync.id if resync else ""
        try:
            return TablePlanner(
                services,
                self.client,
                lease,
                reader,
                deadline=self.deadline,
                progress=self.progress,
                stop=_stop_planning,
            ).run()
        finally:
            lease.state.plan.errors += errors.count
            store_unreadable(services, access)
            if step is Step.ACCOUNTS:
                lease.state.plan.unreadable_fields = sorted(access.known())

    def _counted(self) -> CyclePlan:
        """The plan, with the Dataverse requests this heartbeat sent added."""
        plan = self.lease.state.plan
        if self.client is not None:
            requests, throttled = self._sent_before
            plan.dataverse_requests += self.client.stats.requests - requests
            plan.dataverse_throttled += self.client.stats.throttled - throttled
            self._sent_before = (self.client.stats.requests, self.client.stats.throttled)
        return plan


def _failed(services: Services, lease: CycleLease, error: Exception, plan: CyclePlan) -> Heartbeat:
    """Planning failed: what was enqueued is applied, then the cycle closes as failed; the
    checkpoint stays for the next cycle, which goes on from there."""
    step = lease.state.step.value if lease.state.step else ""
    explained = explain(error)
    failure = Failure(utcnow(), step, explained.message, explained.fix, explained.needs_action)
    with contextlib.suppress(AzureError):  # the failure itself is kept in the schedule too
        services.errors.record(
            entity="cycle",
            record_id=lease.state.cycle_id,
            operation=f"plan {step}".strip(),
            message=f"{failure.message}. Fix: {failure.fix}",
            cycle_id=lease.state.cycle_id,
            code=ErrorCode.PLANNING_FAILED,
        )
    telemetry.count("acctsync.planning_failures", 1, step=step, kind=type(error).__name__)
    # One line that says what happened and what to do; the traceback of an expected error
    # only in debug logs, of a defect at error level.
    logger.error(
        "cycle %s: planning %s failed: %s. Fix: %s",
        lease.state.cycle_id,
        step,
        failure.message,
        failure.fix,
        exc_info=None if explained.expected else error,
        extra={"cycle_id": lease.state.cycle_id},
    )
    if explained.expected:
        logger.debug("planning failure", exc_info=error)
    with contextlib.suppress(LeaseLost):  # taken over: the other heartbeat goes on
        lease.release(phase=Phase.APPLYING, failure=failure, last_failure=failure, plan=plan)
    return Heartbeat(Action.FAILED, lease.state.cycle_id, step, error=failure.message)


# The ids of the batches that did not apply a cycle's summary names, at most.
MISSING_NAMED = 100


def finish_cycle(services: Services, state: CycleState, *, now: datetime) -> dict[str, Any] | None:
    """Close a cycle whose queue is empty; None when another heartbeat did first. It succeeded
    only if every batch it enqueued was applied: one that was not is in the poison queue
    (whether or not its last attempt could record that) and is named, and what its replay
    needs is kept."""
    plan = state.plan
    if plan.batches:
        totals = services.results.totals(state.cycle_id)
    else:  # nothing was enqueued: there is nothing to add up
        totals = CycleTotals(BatchResult(), set(), set(), None)
    missing = totals.unapplied(batch_id(n) for n in range(1, plan.batches + 1))
    status = _status(state, missing)
    # The pause runs from the moment the last batch was applied, not from when this noticed.
    ended = (
        totals.last_applied_at
        if totals.last_applied_at and status is not CycleStatus.FAILED
        else now
    )
    summary = _summary(state, totals, status, missing, ended=ended)
    _end_first_loads(services, state)
    # Keyed by the cycle's start, so a heartbeat that races this one writes the same row.
    services.history.add(summary, started_at=state.started_at or now)
    interval = services.settings.sync_interval_minutes
    finished = replace(
        state,
        phase=Phase.IDLE,
        step=None,
        lease_owner="",
        lease_until=None,
        finished_at=ended,
        next_due=_retry_at(state.failure, now, interval)
        if state.failure
        else ended + timedelta(minutes=interval),
        interval_minutes=None if state.failure else interval,
        plan=CyclePlan(),
        checkpoints=_unapplied_chains(state, missing),
        failure=None,
        failures_in_a_row=state.failures_in_a_row + 1 if state.failure else 0,
        succeeded_at=state.succeeded_at if state.failure else ended,
    )
    if not services.schedule.write(finished):
        return None
    if plan.resync:
        cycle_finished(services, plan.resync, state.cycle_id, totals.result.refreshed)
    if plan.batches:
        ClaimStore(services.storage.container(BATCH_CONTAINER)).drop_cycle(
            state.cycle_id, keep=set(missing) | totals.poisoned
        )
    _close_stamps(services, state.cycle_id, missing)
    if "duration_s" in summary:
        telemetry.observe("acctsync.cycle_duration_s", summary["duration_s"])
    _remove_expired(services, now)
    logger.info("cycle finished", extra=summary)
    return summary


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
) -> dict[str, Any]:
    plan, result = state.plan, totals.result
    summary: dict[str, Any] = {
        "cycle_id": state.cycle_id,
        "status": status.value,
        "started_at": iso(state.started_at),
        "finished_at": iso(ended),
        "accounts_changed": plan.changed("accounts"),
        "contacts_changed": plan.changed("contacts"),
        "batches": plan.batches,
        "batches_applied": totals.batches_applied,
        # The queue is empty: a batch not applied went to the poison queue, whether or not
        # its last attempt (killed, or unable to write) recorded it.
        "batches_poisoned": len(missing),
        "batches_missing": len(missing),
        "missing_batches": missing[:MISSING_NAMED],
        "sweeps_skipped": {n: t.sweep_skipped for n, t in plan.tables.items() if t.sweep_skipped},
        "accounts_applied": result.accounts_applied,
        "contacts_applied": result.contacts_applied,
        "skipped": result.skipped,
        "deleted": result.deleted,
        "accounts_filtered": result.filtered,
        "resync": plan.resync or None,
        "resync_refreshed": result.refreshed,
        "activities_logged": result.activities_logged,
        "activities_suppressed": result.activities_suppressed,
        "errors": plan.errors + result.errors + len(missing),
        "modes": {name: table.mode.value for name, table in plan.tables.items()},
        "restarted": {n: t.restarted for n, t in plan.tables.items() if t.restarted},
        "backfill": plan.backfill,
        "unreadable_fields": plan.unreadable_fields,
        "dataverse_requests": plan.dataverse_requests,
        "dataverse_throttled": plan.dataverse_throttled,
        "planning_heartbeats": plan.heartbeats,
        "stages": totals.stage_rows(state.started_at),
        "change_lag_s": totals.lag.to_summary(),
    }
    if state.failure:
        summary["failure"] = state.failure.to_dict()
    if state.started_at:
        summary["duration_s"] = round((ended - state.started_at).total_seconds(), 3)
    return summary


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


def _end_first_loads(services: Services, state: CycleState) -> None:
    """The first loads this cycle applied to their end (read whole, every batch applied or in
    the poison queue): no later batch marks rows as theirs. A first load whose chain goes on
    in the next cycle (planning failed) stays open. Before the cycle is closed: a heartbeat
    that crashed in between finishes the cycle again and ends them then."""
    tables = state.plan.tables
    if not any(t.mode is LoadMode.INITIAL or t.restarted for t in tables.values()):
        return  # neither a first load nor one that turned into a re-load (link refused)
    for entity_set in tables:
        checkpoint = state.checkpoints.get(entity_set)
        if checkpoint is None or checkpoint.mode is not LoadMode.INITIAL:
            services.initial_loads.end(synced_stream(entity_set))


def _close_stamps(services: Services, cycle_id: str, missing: list[str]) -> None:
    """A batch whose last attempt was killed may have left its change-feed stamp open: it
    will not finish, so feed readers must not wait for it (a replay takes a stamp anew)."""
    try:
        for batch in missing:
            services.feed.stamps.close(feed_identity(cycle_id, batch))
    except AzureError:  # the marker expires by itself
        logger.warning("could not close the feed stamps of unapplied batches", exc_info=True)


def _remove_expired(services: Services, now: datetime) -> None:
    settings = services.settings
    try:
        services.errors.remove_older_than(now - timedelta(days=settings.error_retention_days))
        feed_cutoff = now - timedelta(days=settings.feed_retention_days)
        services.feed.remove_older_than(int(feed_cutoff.timestamp() * 1000))
        audit_cutoff = now - timedelta(days=settings.audit_retention_days)
        services.audit.remove_older_than(audit_cutoff, limit=AUDIT_REMOVED_PER_CYCLE)
    except AzureError:  # the next cycle tries again
        logger.warning(
            "could not remove sync errors, feed or audit entries past their retention",
            exc_info=True,
        )


def _retry_at(failure: Failure, now: datetime, interval_minutes: float) -> datetime:
    """A failure that needs someone to act is tried again a whole interval later (at least
    the retry delay); any other a minute later."""
    if failure.needs_action:
        return now + max(RETRY_AFTER_FAILURE, timedelta(minutes=interval_minutes))
    return now + RETRY_AFTER_FAILURE


def _log_planned(cycle_id: str, step: Step, plan: CyclePlan, what: str) -> None:
    logger.info(
        "cycle %s: %s %s",
        cycle_id,
        step.value,
        what,
        extra={"cycle_id": cycle_id, "step": step.value, "batches": plan.batches},
    )
