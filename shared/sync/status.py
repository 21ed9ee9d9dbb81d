"""Sync status (Marketo's "Sync Status" and "Sync Errors") as one JSON-ready dict."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from shared.audit import audited
from shared.services import Services
from shared.state.audit import Actor, AuditAction
from shared.state.fields import Table
from shared.state.results import CycleStatus
from shared.state.schedule import CycleState, Phase
from shared.storage import BATCH_QUEUE, POISON_QUEUE
from shared.sync.filter import filter_status
from shared.sync.health import Health, HealthFacts, decide
from shared.sync.resync import resync_status
from shared.times import iso, utcnow
from shared.verify.requests import verify_status

CYCLE_PHASES = (Phase.PLANNING, Phase.APPLYING)  # a cycle is under way (not a verify)


def sync_status(services: Services, *, cycles: int = 10, errors: int = 50) -> dict[str, Any]:
    now = utcnow()
    state = services.schedule.read()
    cursors = services.cursors.all()
    selection = services.fields.get()
    contact_columns = services.fields.get(Table.CONTACT)
    running = state.phase in CYCLE_PHASES
    history = services.history.latest(cycles)
    last_applied = services.results.totals(state.cycle_id).last_applied_at if running else None
    pause = services.pauses.get()
    return {
        "health": sync_health(services, state, now, last_applied=last_applied).to_json(),
        # Marketo's Disable Sync: queued batches still apply, nothing new starts.
        "paused": pause is not None,
        "paused_since": iso(pause.since) if pause else None,
        "phase": state.phase.value,
        "current_cycle": state.cycle_id if running else None,
        # The step the running cycle is at: contacts, [contacts_sweep,] accounts, ...
        "current_stage": state.step.value if running and state.step else None,
        "current_plan": asdict(state.plan) if running else None,
        # Where each table's page chain stands while it is read over several heartbeats.
        "checkpoints": {
            name: {"mode": c.mode.value, "rows_read": c.rows_read, "pages": c.pages}
            for name, c in state.checkpoints.items()
        },
        "lease": {"owner": state.lease_owner, "until": iso(state.lease_until)}
        if state.lease_held(now)
        else None,
        "last_cycles": ([_in_process(state)] if running else []) + history,
        # Paused: no cycle is due until the sync is resumed.
        "next_due": iso(state.next_due) if not running and pause is None else None,
        "queue_backlog": services.storage.queue_length(BATCH_QUEUE),
        "poison_count": services.storage.queue_length(POISON_QUEUE),
        "cursor_age_s": {
            c.entity_set: round((now - c.updated_at).total_seconds(), 1) for c in cursors
        },
        "unreadable_fields": sorted(selection.unreadable) if selection else [],
        # Every column the sync leaves alone because the sync user cannot read it, and why.
        "unreadable_columns": {
            table.value: {name: why.why for name, why in stored.unreadable.items()}
            for table, stored in ((Table.ACCOUNT, selection), (Table.CONTACT, contact_columns))
            if stored is not None and stored.unreadable
        },
        # The sync filter's state and how many accounts it keeps out; Quick/Advanced Syncs.
        **filter_status(services),
        "resyncs": resync_status(services),
        # `acctsync verify`: the last result's summary, the one under way or asked for.
        "verify": verify_status(services, state),
        "last_failure": state.last_failure.to_dict() if state.last_failure else None,
        "failures_in_a_row": state.failures_in_a_row,
        "last_errors": services.errors.latest(errors),
    }


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


def _in_process(state: CycleState) -> dict[str, Any]:
    """The running cycle as a row of the history, with what it has read so far."""
    plan = state.plan
    return {
        "cycle_id": state.cycle_id,
        "status": CycleStatus.IN_PROCESS.value,
        "started_at": iso(state.started_at),
        "step": state.step.value if state.step else None,
        "accounts_changed": plan.changed("accounts"),
        "contacts_changed": plan.changed("contacts"),
        "batches": plan.batches,
        "modes": {name: table.mode.value for name, table in plan.tables.items()},
        "restarted": {n: t.restarted for n, t in plan.tables.items() if t.restarted},
        "failure": state.failure.to_dict() if state.failure else None,
    }


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
