"""Pause and resume (Marketo's Disable and Enable Sync). While paused, batches already queued
are applied and a cycle whose last step is applied finishes, but no cycle or step starts
(shared/sync/cycle.py honours it); the pause is kept in storage, so it outlasts restarts."""

from __future__ import annotations

from typing import Any

from shared.services import Services
from shared.times import iso, utcnow


def pause_sync(services: Services, *, by: str) -> dict[str, Any]:
    """Stop new cycles and steps from starting; queued batches still apply."""
    pause = services.pauses.pause(now=utcnow(), by=by)
    return {"paused": True, "paused_since": iso(pause.since)}


def resume_sync(services: Services) -> dict[str, Any]:
    """Let cycles start again: the next heartbeat goes on from the stored delta links (and a
    cycle that was due meanwhile starts at once)."""
    was = services.pauses.resume()
    return {"paused": False, "was_paused_since": iso(was.since) if was else None}
