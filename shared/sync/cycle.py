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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from azure.core.exceptions import AzureError

from shared import telemetry
from shared.dataverse.client import DataverseClient
from shared.mirror.initial import synced_stream
from shared.services import Services
from shared.state.results import BatchResult, CycleTotals
from shared.state.schedule import (
    CyclePlan,
    CycleState,
    Failure,
    LoadMode,
    Phase,
    Step,
)
from shared.state.summary import CycleSummary
from shared.state.sync_errors import ErrorCode
from shared.state.verify import VerifyRequest, VerifyResult, VerifyRows, VerifyTrigger
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE, POISON_QUEUE
from shared.sync.apply.context import feed_identity
from shared.sync.claims import ClaimStore
from shared.sync.close import close_cycle
from shared.sync.column_access import CycleColumns, check_columns, store_unreadable
from shared.sync.failures import explain
from shared.sync.lease import CycleLease, LeaseLost
from shared.sync.planner import Progress, StepOutcome, TablePlanner, plan_sweep
from shared.sync.readers import AccountReader, ContactReader, RowErrors, TableReader
from shared.sync.resync_planner import ResyncPlanner
from shared.sync.resync_requests import cycle_finished
from shared.times import iso, utcnow
from shared.verify.requests import unverified_for, wanted_verify
from shared.verify.step import VerifyAction, VerifyStep

logger = logging.getLogger(__name__)

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
    VERIFIED = "verified"  # a verify finished; `verified` is its result


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


@dataclass(frozen=True)
class Heartbeat:
    """What one heartbeat did."""

    action: Action
    cycle_id: str = ""
    step: Step | None = None  # the cycle's step it planned, waits on or is paused at
    backlog: int = 0
    next_due: str | None = None
    lease_owner: str = ""
    lease_until: str | None = None
    error: str | None = None
    summary: CycleSummary | None = None  # FINISHED: the cycle's summary
    plan: CyclePlan | None = None  # PLANNED: what the cycle's planning did so far
    verify_id: str | None = None  # a heartbeat of a verify (paused, going on or finished)
    verified: VerifyResult | None = None  # VERIFIED: the verify's result
    started: bool = False  # this heartbeat began the cycle

    @property
    def step_name(self) -> str | None:
        """What the heartbeat worked on, for logs: its step, or "verify"."""
        return "verify" if self.verify_id is not None else self.step


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
    # Paused: what is queued is applied and a cycle whose last step is applied finishes, but
    # no cycle and no step starts (a step left at a checkpoint waits there).
    tick = _Tick(
        services,
        state,
        owner,
        now,
        lease=timedelta(seconds=services.settings.lease_seconds),
        paused=services.pauses.get() is not None,
    )
    if state.phase is Phase.VERIFYING:
        return _verify(services, state, owner=owner, now=now, paused=tick.paused)
    if state.phase is Phase.APPLYING:
        taken = _after_applied(tick)
    elif state.phase is Phase.PLANNING:
        taken = _planning_again(tick)
    else:
        taken = _between_cycles(tick, force=force, verify_rows=verify_rows)
    if isinstance(taken, Heartbeat):
        return taken
    if taken is None:
        return _busy(services.schedule.read())
    outcome = _plan(services, CycleLease(services.schedule, taken, duration=tick.lease), progress)
    return replace(outcome, started=state.phase is Phase.IDLE)


@dataclass(frozen=True)
class _Tick:
    """What a heartbeat decides from: the cycle row as read, and whether the sync is paused."""

    services: Services
    state: CycleState
    owner: str
    now: datetime
    lease: timedelta
    paused: bool

    def take(self, step: Step) -> CycleState | None:
        """The lease to plan `step`; None when another heartbeat moved the row first."""
        return self.services.schedule.take(
            self.state, owner=self.owner, now=self.now, lease=self.lease, step=step
        )


# What a phase's turn comes to: the heartbeat's answer, or the state whose lease it took to
# plan (None: another heartbeat took it first).
_Turn = Heartbeat | CycleState | None


def _after_applied(tick: _Tick) -> _Turn:
    """The step's batches are on the queue: wait for them, then finish the cycle or take its
    next step."""
    state = tick.state
    backlog = queue_backlog(tick.services)
    if backlog:
        return Heartbeat(Action.WAITING, state.cycle_id, state.step, backlog=backlog)
    step = None if state.failure else next_step(state.step, state.plan)
    if step is None:
        summary = finish_cycle(tick.services, state, now=tick.now)
        if summary is None:
            return Heartbeat(Action.BUSY, state.cycle_id)
        return Heartbeat(Action.FINISHED, state.cycle_id, summary=summary)
    if tick.paused:
        return Heartbeat(Action.PAUSED, state.cycle_id, step)
    return tick.take(step)


def _planning_again(tick: _Tick) -> _Turn:
    """A step left at a checkpoint (or by a planner that died): go on with it."""
    state = tick.state
    if state.lease_held(tick.now):
        return _busy(state)
    if tick.paused:
        return Heartbeat(Action.PAUSED, state.cycle_id, state.step)
    return tick.take(state.step or Step.CONTACTS)


def _between_cycles(tick: _Tick, *, force: bool, verify_rows: VerifyRows) -> _Turn:
    """No cycle runs: a verify that is wanted, else a cycle that is due (or forced)."""
    services, state, now = tick.services, tick.state, tick.now
    wanted = (
        None if force else wanted_verify(services, state, now, paused=tick.paused, rows=verify_rows)
    )
    if wanted is not None:  # between cycles, so that the two never overlap
        return _verify(services, state, owner=tick.owner, now=now, paused=tick.paused, start=wanted)
    if tick.paused:
        return Heartbeat(Action.PAUSED, state.cycle_id)
    due = _due(services, state, now)
    if not force and due > now:
        return Heartbeat(Action.IDLE, state.cycle_id, next_due=iso(due))
    return services.schedule.start(state, owner=tick.owner, now=now, lease=tick.lease)


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
        return Heartbeat(Action.PAUSED, state.cycle_id, verify_id=verifying.id)
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
        return Heartbeat(Action.VERIFYING, state.cycle_id, verify_id=outcome.verify_id)
    return Heartbeat(
        Action.VERIFIED, state.cycle_id, verify_id=outcome.verify_id, verified=outcome.result
    )


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
        state.step,
        lease_owner=state.lease_owner,
        lease_until=iso(state.lease_until),
    )


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
                    return Heartbeat(Action.CHECKPOINTED, cycle_id, step)
                following = next_step(step, plan)
                if outcome.enqueued:
                    lease.release(phase=Phase.APPLYING, plan=self._counted())
                    _log_planned(cycle_id, step, plan, "planned")
                    return Heartbeat(Action.PLANNED, cycle_id, step, plan=plan)
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
    step = lease.state.step
    explained = explain(error)
    failure = Failure(utcnow(), step, explained.message, explained.fix, explained.needs_action)
    with contextlib.suppress(AzureError):  # the failure itself is kept in the schedule too
        services.errors.record(
            entity="cycle",
            record_id=lease.state.cycle_id,
            operation=f"plan {step or ''}".strip(),
            message=f"{failure.message}. Fix: {failure.fix}",
            cycle_id=lease.state.cycle_id,
            code=ErrorCode.PLANNING_FAILED,
        )
    telemetry.count("acctsync.planning_failures", 1, step=step or "", kind=type(error).__name__)
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


def finish_cycle(services: Services, state: CycleState, *, now: datetime) -> CycleSummary | None:
    """Close a cycle whose queue is empty (shared/sync/close.py), store it, and tidy after it;
    None when another heartbeat closed it first."""
    if state.plan.batches:
        totals = services.results.totals(state.cycle_id)
    else:  # nothing was enqueued: there is nothing to add up
        totals = CycleTotals(BatchResult(), set(), set(), None)
    interval = services.settings.sync_interval_minutes
    closed = close_cycle(state, totals, now=now, interval_minutes=interval)
    _end_first_loads(services, state)
    # Keyed by the cycle's start, so a heartbeat that races this one writes the same row.
    services.history.add(closed.summary, started_at=state.started_at or now)
    if not services.schedule.write(closed.state):
        return None
    _tidy_after(services, state, totals, closed.missing)
    if closed.summary.duration_s is not None:
        telemetry.observe("acctsync.cycle_duration_s", closed.summary.duration_s)
    _remove_expired(services, now)
    logger.info("cycle finished", extra=closed.summary.to_json())
    return closed.summary


def _tidy_after(
    services: Services, state: CycleState, totals: CycleTotals, missing: tuple[str, ...]
) -> None:
    """What the closed cycle leaves behind: its re-sync chunk counted, the claims of its
    applied batches dropped (a missing or poisoned one's kept for its replay), and the feed
    stamps of its missing batches closed."""
    plan = state.plan
    if plan.resync:
        cycle_finished(services, plan.resync, state.cycle_id, totals.result.refreshed)
    if plan.batches:
        ClaimStore(services.storage.container(BATCH_CONTAINER)).drop_cycle(
            state.cycle_id, keep=set(missing) | totals.poisoned
        )
    _close_stamps(services, state.cycle_id, missing)


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


def _close_stamps(services: Services, cycle_id: str, missing: tuple[str, ...]) -> None:
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


def _log_planned(cycle_id: str, step: Step, plan: CyclePlan, what: str) -> None:
    logger.info(
        "cycle %s: %s %s",
        cycle_id,
        step.value,
        what,
        extra={"cycle_id": cycle_id, "step": step.value, "batches": plan.batches},
    )
