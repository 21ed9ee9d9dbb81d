"""When a verify runs: asked for (the CLI, the API), or every VERIFY_INTERVAL_HOURS.

A verify asked for starts at the next heartbeat that finds no cycle running, even while the
sync is paused (it is an admin's explicit ask, and a repair applies only what Dynamics holds);
a scheduled one starts VERIFY_INTERVAL_HOURS after the last verify finished (or after the first
cycle that succeeded), never while paused, and repairs unless VERIFY_REPAIR=false.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.audited_actions import audited
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.state.schedule import CycleState, Phase
from shared.state.verify import VerifyRequest, VerifyRows, VerifyTrigger
from shared.storage import BATCH_CONTAINER
from shared.times import iso, utcnow
from shared.verify.progress import RunStore


def request_verify(
    services: Services, *, repair: bool, deep: bool, actor: Actor
) -> tuple[VerifyRequest, bool]:
    """Ask for a verify: (the one that will run, whether this ask queued it; False when one
    was asked for already and still waits). Recorded in the audit trail, as a repair when
    it is to repair what it finds."""
    action = AuditAction.REPAIR if repair else AuditAction.VERIFY
    with audited(services, actor, action, before={"repair": repair, "deep": deep}) as record:
        wanted = VerifyRequest.new(
            trigger=VerifyTrigger.REQUESTED, now=utcnow(), by=actor.label, repair=repair, deep=deep
        )
        request, queued = services.verifies.request(wanted)
        record.after = {**request.to_json(), "queued": queued}
    return request, queued


def wanted_verify(
    services: Services, state: CycleState, now: datetime, *, paused: bool, rows: VerifyRows
) -> VerifyRequest | None:
    """The verify to start now, when no cycle runs; None when none is due."""
    if rows.requested is not None:
        return rows.requested
    due = scheduled_due(services, state, rows)
    if paused or due is None or due > now:
        return None
    return VerifyRequest.new(
        trigger=VerifyTrigger.SCHEDULED,
        now=now,
        by="schedule",
        repair=services.settings.verify_repair,
        deep=False,
    )


def scheduled_due(
    services: Services, state: CycleState, rows: VerifyRows | None = None
) -> datetime | None:
    """When the next scheduled verify is due; None when they are off or nothing synced yet.
    `rows`: the verify rows as the caller read them (else read here)."""
    hours = services.settings.verify_interval_hours
    if hours <= 0:
        return None
    rows = rows or services.verifies.rows()
    since = rows.last.finished_at if rows.last is not None else _anchor(services, state, rows)
    return since + timedelta(hours=hours) if since is not None else None


def unverified_for(
    services: Services, state: CycleState, now: datetime, rows: VerifyRows
) -> timedelta | None:
    """How long the mirror has gone without a verify that finished (without error): what the
    "not verified" alert watches. None when scheduled verifies are off or nothing synced yet."""
    if services.settings.verify_interval_hours <= 0:
        return None
    since = rows.clean_at or _anchor(services, state, rows)
    return max(now - since, timedelta(0)) if since is not None else None


def _anchor(services: Services, state: CycleState, rows: VerifyRows) -> datetime | None:
    """The schedule's start before any verify: read with the rows, kept once when missing."""
    return rows.anchor_at or services.verifies.anchor(state.succeeded_at)


def verify_status(services: Services, state: CycleState) -> dict[str, Any]:
    """What status shows: the last verify's summary, the one under way (with the table and
    stage it is at) or asked for, and when the next scheduled one is due."""
    rows = services.verifies.rows()
    last, requested = rows.last, rows.requested
    running = rows.running if state.phase is Phase.VERIFYING else None
    summary = None
    if last is not None:
        full = last.to_json()
        keys = ("id", "trigger", "finished_at", "duration_s", "deep", "repair", "drift")
        summary = {k: full[k] for k in (*keys, "by_kind", "repaired", "drift_left", "error")}
        summary["dataverse_requests"] = full["dataverse_requests"]
        summary["samples"] = full["samples"][:10]
    return {
        "last": summary,
        "running": _running(services, running) if running is not None else None,
        "requested": requested.to_json() if requested is not None else None,
        "next_due": iso(scheduled_due(services, state, rows)),
    }


def _running(services: Services, request: VerifyRequest) -> dict[str, Any]:
    """The verify under way and where it stands (its first heartbeat may not have saved any)."""
    run = RunStore(services.storage.container(BATCH_CONTAINER)).load(request.id)
    table = run.current if run is not None else None
    where: dict[str, str | None]
    if run is None:
        where = {"table": None, "stage": None}
    elif table is None:
        where = {"table": None, "stage": "repair"}
    else:
        where = {"table": table.entity_set, "stage": table.stage.value}
    return {**request.to_json(), **where}
