"""Starting the tables' change-tracking chains over: `acctsync reset-cursors`.

Each table's delta link (and any checkpoint of a chain under way) is forgotten, keeping its
re-load generation, so the next cycle reads every table again in full as a re-load: values
that did not change log no activity, and the sweep flags what the org no longer has. The way
out when DATAVERSE_URL now names another host than the mirror was built from.
"""

from __future__ import annotations

from dataclasses import replace

from shared.audited_actions import audited
from shared.errors import AcctsyncError
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.state.cursors import Cursor
from shared.state.schedule import Phase
from shared.times import utcnow


class CycleRunning(AcctsyncError, RuntimeError):
    """A cycle is running: its chains cannot be reset under it."""


def reset_cursors(services: Services, *, actor: Actor) -> list[str]:
    """Reset every table's chain; returns the entity sets reset. Recorded in the audit trail
    by table name only (a delta link carries a token)."""
    before = {"tracked": sorted(c.entity_set for c in services.cursors.all() if c.delta_link)}
    with audited(services, actor, AuditAction.CURSOR_RESET, before=before) as record:
        reset = _reset(services)
        record.after = {"reset": reset}
    return reset


def _reset(services: Services) -> list[str]:
    state = services.schedule.read()
    if state.phase is not Phase.IDLE and not state.failure:
        raise CycleRunning(
            f"cycle {state.cycle_id} is running ({state.phase.value} {state.step}); wait for "
            "it to finish (acctsync status), then run this again"
        )
    if state.checkpoints and not services.schedule.write(replace(state, checkpoints={})):
        raise CycleRunning("a cycle started meanwhile; wait for it to finish, then run again")
    reset = []
    for cursor in services.cursors.all():
        services.cursors.commit(
            Cursor(cursor.entity_set, "", cursor.select, utcnow(), cursor.generation)
        )
        reset.append(cursor.entity_set)
    return sorted(reset)
