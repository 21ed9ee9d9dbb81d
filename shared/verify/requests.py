"""When a verify runs: asked for (the CLI, the API), or every VERIFY_INTERVAL_HOURS.

A verify asked for starts at the next heartbeat that finds no cycle running, even while the
sync is paused (it is an admin's explicit ask, and a repair applies only what Dynamics holds);
a scheduled one starts VERIFY_INTERVAL_HOURS after the last verify finished (or after the first
cycle that succeeded), never while paused, and repairs unless VERIFY_REPAIR=false.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.audited_actions import audited
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.state.schedule import CycleState, Phase
from shared.state.verify import VerifyRequest, VerifyResult, VerifyRows, VerifyTrigger
from shared.storage import BATCH_CONTAINER
from shared.times import iso, utcnow
from shared.verify.progress import RunStore, Stage


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


# What status shows of the last verify (GET /api/sync/verify answers all of `to_json`), and
# how many of the drifted records' ids.
SUMMARY_KEYS = (
    "id",
    "trigger",
    "finished_at",
    "duration_s",
    "deep",
    "repair",
    "drift",
    "by_kind",
    "repaired",
    "drift_left",
    "error",
    "dataverse_requests",
    "samples",
)
STATUS_SAMPLES = 10


@dataclass(frozen=True)
class VerifyUnderWay:
    """The verify under way and where it stands: nothing saved yet (its first heartbeat may
    not have saved any), a table at a stage, or past every table (its repair)."""

    request: VerifyRequest
    saved: bool
    table: str | None = None  # the entity set it compares; None past every table
    stage: Stage | None = None

    def to_json(self) -> dict[str, Any]:
        stage = self.stage.value if self.stage else ("repair" if self.saved else None)
        return {**self.request.to_json(), "table": self.table, "stage": stage}


@dataclass(frozen=True)
class VerifyStatus:
    """What status shows: the last verify, the one under way or asked for, and when the next
    scheduled one is due (None: scheduled verifies are off, or nothing synced yet)."""

    last: VerifyResult | None
    running: VerifyUnderWay | None
    requested: VerifyRequest | None
    next_due: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "last": _summary(self.last) if self.last is not None else None,
            "running": self.running.to_json() if self.running is not None else None,
            "requested": self.requested.to_json() if self.requested is not None else None,
            "next_due": iso(self.next_due),
        }


def _summary(last: VerifyResult) -> dict[str, Any]:
    full = last.to_json()
    summary = {key: full[key] for key in SUMMARY_KEYS}
    summary["samples"] = summary["samples"][:STATUS_SAMPLES]
    return summary


def verify_status(services: Services, state: CycleState) -> VerifyStatus:
    rows = services.verifies.rows()
    running = rows.running if state.phase is Phase.VERIFYING else None
    return VerifyStatus(
        last=rows.last,
        running=_under_way(services, running) if running is not None else None,
        requested=rows.requested,
        next_due=scheduled_due(services, state, rows),
    )


def _under_way(services: Services, request: VerifyRequest) -> VerifyUnderWay:
    run = RunStore(services.storage.container(BATCH_CONTAINER)).load(request.id)
    if run is None:
        return VerifyUnderWay(request, saved=False)
    table = run.current
    if table is None:
        return VerifyUnderWay(request, saved=True)
    return VerifyUnderWay(request, saved=True, table=table.entity_set, stage=table.stage)
