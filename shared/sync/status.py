"""Sync status (Marketo's "Sync Status" and "Sync Errors"): one typed object, its JSON the
answer of `acctsync status` and `/api/sync/status`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.audited_actions import audited
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.state.field_selections import Table
from shared.state.pause_switch import Pause
from shared.state.results import CycleStatus
from shared.state.resync_queue import Resync
from shared.state.schedule import Checkpoint, CyclePlan, CycleState, Failure, Phase, Step
from shared.state.summary import CycleSummary
from shared.state.sync_errors import SyncError
from shared.storage import BATCH_QUEUE, POISON_QUEUE
from shared.sync.filter import FilterStatus, filter_status
from shared.sync.health import Health, HealthFacts, decide
from shared.sync.resync_requests import resync_status
from shared.times import iso, utcnow
from shared.verify.requests import VerifyStatus, verify_status

CYCLE_PHASES = (Phase.PLANNING, Phase.APPLYING)  # a cycle is under way (not a verify)


@dataclass(frozen=True)
class RunningCycle:
    """The running cycle as a row of the history, with what it has read so far."""

    cycle_id: str
    started_at: datetime | None
    step: Step | None
    plan: CyclePlan
    failure: Failure | None

    def to_json(self) -> dict[str, object]:
        plan = self.plan
        return {
            "cycle_id": self.cycle_id,
            "status": CycleStatus.IN_PROCESS.value,
            "started_at": iso(self.started_at),
            "step": self.step.value if self.step else None,
            "accounts_changed": plan.changed("accounts"),
            "contacts_changed": plan.changed("contacts"),
            "batches": plan.batches,
            "modes": {name: table.mode.value for name, table in plan.tables.items()},
            "restarted": {n: t.restarted for n, t in plan.tables.items() if t.restarted},
            "failure": self.failure.to_dict() if self.failure else None,
        }


@dataclass(frozen=True)
class SyncStatus:
    """What `acctsync status` prints and `/api/sync/status` answers (its JSON: `to_json`)."""

    health: Health
    pause: Pause | None  # Marketo's Disable Sync: queued batches still apply, nothing starts
    phase: Phase
    current_cycle: str | None
    # The step the running cycle is at: contacts, [contacts_sweep,] accounts, ...
    current_stage: Step | None
    current_plan: CyclePlan | None
    # Where each table's page chain stands while it is read over several heartbeats.
    checkpoints: Mapping[str, Checkpoint]
    lease_owner: str | None  # set while a planner holds the lease
    lease_until: datetime | None
    last_cycles: tuple[RunningCycle | CycleSummary, ...]
    next_due: datetime | None  # None while a cycle runs or the sync is paused
    queue_backlog: int
    poison_count: int
    cursor_age_s: Mapping[str, float]
    unreadable_fields: tuple[str, ...]
    # Every column the sync leaves alone because the sync user cannot read it, and why.
    unreadable_columns: Mapping[str, Mapping[str, str]]
    filtering: FilterStatus  # the sync filter's state and how many accounts it keeps out
    resyncs: tuple[Resync, ...]  # Quick/Advanced Syncs, the oldest first
    # `acctsync verify`: the last result, the one under way or asked for.
    verify: VerifyStatus
    last_failure: Failure | None
    failures_in_a_row: int
    last_errors: tuple[SyncError, ...]  # newest first

    def to_json(self) -> dict[str, Any]:
        sync_filter = self.filtering.sync_filter
        return {
            "health": self.health.to_json(),
            "paused": self.pause is not None,
            "paused_since": iso(self.pause.since) if self.pause else None,
            "phase": self.phase.value,
            "current_cycle": self.current_cycle,
            "current_stage": self.current_stage.value if self.current_stage else None,
            "current_plan": asdict(self.current_plan) if self.current_plan else None,
            "checkpoints": {
                name: {"mode": c.mode.value, "rows_read": c.rows_read, "pages": c.pages}
                for name, c in self.checkpoints.items()
            },
            "lease": {"owner": self.lease_owner, "until": iso(self.lease_until)}
            if self.lease_owner is not None
            else None,
            "last_cycles": [cycle.to_json() for cycle in self.last_cycles],
            "next_due": iso(self.next_due),
            "queue_backlog": self.queue_backlog,
            "poison_count": self.poison_count,
            "cursor_age_s": dict(self.cursor_age_s),
            "unreadable_fields": list(self.unreadable_fields),
            "unreadable_columns": {t: dict(c) for t, c in self.unreadable_columns.items()},
            "sync_filter": sync_filter.to_json() if sync_filter is not None else None,
            "filtered_accounts": self.filtering.filtered_accounts,
            "resyncs": [resync.to_json() for resync in self.resyncs],
            "verify": self.verify.to_json(),
            "last_failure": self.last_failure.to_dict() if self.last_failure else None,
            "failures_in_a_row": self.failures_in_a_row,
            "last_errors": [error.to_json() for error in self.last_errors],
        }


def sync_status(services: Services, *, cycles: int = 10, errors: int = 50) -> SyncStatus:
    now = utcnow()
    state = services.schedule.read()
    selection = services.fields.get()
    contact_columns = services.fields.get(Table.CONTACT)
    running = state.phase in CYCLE_PHASES
    last_applied = services.results.totals(state.cycle_id).last_applied_at if running else None
    pause = services.pauses.get()
    in_process = (
        RunningCycle(state.cycle_id, state.started_at, state.step, state.plan, state.failure)
        if running
        else None
    )
    return SyncStatus(
        health=sync_health(services, state, now, last_applied=last_applied),
        pause=pause,
        phase=state.phase,
        current_cycle=state.cycle_id if running else None,
        current_stage=state.step if running else None,
        current_plan=state.plan if running else None,
        checkpoints=state.checkpoints,
        lease_owner=state.lease_owner if state.lease_held(now) else None,
        lease_until=state.lease_until if state.lease_held(now) else None,
        last_cycles=(*([in_process] if in_process else []), *services.history.latest(cycles)),
        next_due=state.next_due if not running and pause is None else None,
        queue_backlog=services.storage.queue_length(BATCH_QUEUE),
        poison_count=services.storage.queue_length(POISON_QUEUE),
        cursor_age_s={
            c.entity_set: round((now - c.updated_at).total_seconds(), 1)
            for c in services.cursors.all()
        },
        unreadable_fields=tuple(sorted(selection.unreadable)) if selection else (),
        unreadable_columns={
            table.value: {name: why.why for name, why in stored.unreadable.items()}
            for table, stored in ((Table.ACCOUNT, selection), (Table.CONTACT, contact_columns))
            if stored is not None and stored.unreadable
        },
        filtering=filter_status(services),
        resyncs=resync_status(services),
        verify=verify_status(services, state),
        last_failure=state.last_failure,
        failures_in_a_row=state.failures_in_a_row,
        last_errors=tuple(services.errors.latest(errors)),
    )


def sync_health(
    services: Services, state: CycleState, now: datetime, *, last_applied: datetime | None
) -> Health:
    """The health verdict (shared/sync/health.py) from what storage says now."""
    running = state.phase in CYCLE_PHASES
    backlog = services.storage.queue_length(BATCH_QUEUE)
    lease_s = services.settings.lease_seconds
    failing = state.failure or (state.last_failure if state.failures_in_a_row else None)
    facts = HealthFacts(
        now=now,
        interval=timedelta(minutes=services.settings.sync_interval_minutes),
        running=running,
        stage=f"{state.phase.value} {state.step.value}" if running and state.step else None,
        cycle_started=state.cycle_id != "",
        succeeded_at=state.succeeded_at,
        failures_in_a_row=state.failures_in_a_row,
        failing=failing,
        blamed=failing or state.last_failure,
        running_failed=state.failure is not None,
        moved_at=max((t for t in (state.progress_at, last_applied) if t is not None), default=None),
        backlog=backlog,
        beat=services.liveness.last_beat(),
        # The lease is renewed a lease-length ahead: when it was last renewed.
        lease_renewed_at=state.lease_until - timedelta(seconds=lease_s)
        if state.lease_held(now) and state.lease_until
        else None,
        lease_renew_every_s=lease_s / 3,
        holds=tuple(services.liveness.holds()),
        invisible=_invisible(services, backlog) if running and backlog else 0,
    )
    return decide(facts)


def _invisible(services: Services, backlog: int) -> int:
    """Queued batches no worker can take now: the count includes invisible messages, a peek
    sees only visible ones (at most 32)."""
    visible = len(services.storage.queue(BATCH_QUEUE).peek_messages(max_messages=32))
    return max(backlog - visible, 0) if visible < 32 else 0


def replay_poison(services: Services, *, actor: Actor, limit: int = 10_000) -> int:
    """Move poison messages back onto the batch queue (once their cause is fixed); recorded in
    the audit trail with how many moved."""
    with audited(services, actor, AuditAction.REPLAY) as record:
        moved = _replay(services, limit)
        record.after = {"replayed": moved}
    return moved


def _replay(services: Services, limit: int) -> int:
    poison = services.storage.queue(POISON_QUEUE)
    batches = services.storage.queue(BATCH_QUEUE)
    moved = 0
    while moved < limit:
        messages = list(poison.receive_messages(max_messages=32, visibility_timeout=60))
        if not messages:
            break
        for message in messages:
            # Send first, then delete: a crash in between replays a message twice, which the
            # apply step absorbs, rather than losing it.
            batches.send_message(bytes(message.content).decode("utf-8", "replace"))
            poison.delete_message(message.id, message.pop_receipt)
            moved += 1
    return moved
