"""Sync status (Marketo's "Sync Status" and "Sync Errors") as one JSON-ready dict."""

from __future__ import annotations

import json
from typing import Any

from shared.services import Services
from shared.state.tables import iso, utcnow
from shared.storage import BATCH_QUEUE, POISON_QUEUE


def sync_status(services: Services, *, cycles: int = 10, errors: int = 50) -> dict[str, Any]:
    now = utcnow()
    schedule = services.schedule.read()
    cursors = services.cursors.all()
    selection = services.fields.get()
    return {
        "phase": schedule.phase,
        "current_cycle": schedule.cycle_id if schedule.phase != "idle" else None,
        # Which table the running cycle has planned so far: "contacts", then "accounts".
        "current_stage": (schedule.stage or None) if schedule.phase != "idle" else None,
        "current_plan": json.loads(schedule.plan) if schedule.phase == "applying" else None,
        "last_cycles": services.history.latest(cycles),
        "next_due": iso(schedule.next_due) if schedule.phase == "idle" else None,
        "queue_backlog": _count(services, BATCH_QUEUE),
        "poison_count": _count(services, POISON_QUEUE),
        "cursor_age_s": {
            c.entity_set: round((now - c.updated_at).total_seconds(), 1) for c in cursors
        },
        "unreadable_fields": selection.unreadable if selection else [],
        "last_errors": services.errors.latest(errors),
    }


def _count(services: Services, queue: str) -> int:
    return int(services.storage.queue(queue).get_queue_properties().approximate_message_count or 0)


def replay_poison(services: Services, *, limit: int = 10_000) -> int:
    """Move poison messages back onto the batch queue (once their cause is fixed)."""
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
