"""Pause and resume (Marketo's Disable and Enable Sync). While paused, batches already queued
are applied and a cycle whose last step is applied finishes, but no cycle or step starts
(shared/sync/cycle.py honours it); the pause is kept in storage, so it outlasts restarts. The
CLI, the API and the console all go through these two functions, which record each in the
audit trail."""

from __future__ import annotations

from typing import Any

from shared.audited_actions import audited
from shared.errors import AcctsyncError
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.times import iso, utcnow

MAX_REASON_CHARS = 500


class BadPauseReason(AcctsyncError, ValueError):
    """A pause reason that is not one line of printable text of at most 500 characters."""


def checked_reason(reason: str) -> str:
    """The reason as given, or BadPauseReason saying what is wrong with it: it is shown on
    pages and kept in the audit trail."""
    if len(reason) > MAX_REASON_CHARS:
        raise BadPauseReason(f"the reason is longer than {MAX_REASON_CHARS} characters; shorten it")
    if not reason.isprintable():
        raise BadPauseReason("the reason must be one line of printable text")
    return reason


def pause_sync(services: Services, *, actor: Actor, reason: str = "") -> dict[str, Any]:
    """Stop new cycles and steps from starting; queued batches still apply. BadPauseReason
    (nothing changes) for a reason that cannot be shown."""
    reason = checked_reason(reason)
    with audited(services, actor, AuditAction.PAUSE, before=pause_state(services)) as record:
        services.pauses.pause(now=utcnow(), by=actor.label, reason=reason)
        record.after = pause_state(services)
    return {"paused": True, "paused_since": record.after["since"]}


def resume_sync(services: Services, *, actor: Actor) -> dict[str, Any]:
    """Let cycles start again: the next heartbeat goes on from the stored delta links (and a
    cycle that was due meanwhile starts at once)."""
    with audited(services, actor, AuditAction.RESUME, before=pause_state(services)) as record:
        was = services.pauses.resume()
        record.after = pause_state(services)
    return {"paused": False, "was_paused_since": iso(was.since) if was else None}


def pause_state(services: Services) -> dict[str, Any]:
    """The pause as the audit trail keeps it: on or off, since when, by whom, why."""
    pause = services.pauses.get()
    if pause is None:
        return {"paused": False}
    return {"paused": True, "since": iso(pause.since), "by": pause.by, "reason": pause.reason}
