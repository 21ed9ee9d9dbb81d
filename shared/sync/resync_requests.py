"""Re-syncing one account column: Marketo's Quick Sync (every account) and Advanced Sync (the
accounts created or modified in a date range).

A re-sync writes the column's current Dynamics value into every mirrored account it reads,
nulls included, over local edits of that column, and logs no activity. It is queued here and
read by the cycles (shared/sync/resync_planner.py), a chunk per cycle after the accounts, so the
normal sync goes on meanwhile; it reads with a plain query, never touching the change-tracking
chain. The CLI, the API and the console all ask through `request_resync`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.audited_actions import audited
from shared.errors import RequestRefused
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.state.resync_queue import Resync, ResyncStatus, new_resync
from shared.sync.select_fields import HOW_TO_SELECT
from shared.times import DATAVERSE_EARLIEST, DATAVERSE_LATEST, parse_iso, utcnow, within_dataverse


class ResyncProblem(StrEnum):
    """Why a re-sync was refused (the API's error code)."""

    NOT_SELECTED = "field_not_selected"
    UNREADABLE = "field_unreadable"
    BAD_RANGE = "invalid_range"


class ResyncError(RequestRefused):
    """A re-sync that was refused; nothing was queued. `problem` says why (its `code`)."""

    def __init__(self, problem: ResyncProblem, message: str):
        super().__init__(problem.value, message)
        self.problem = problem


@dataclass(frozen=True)
class ResyncRequested:
    resync: Resync
    queued: bool  # False: the same re-sync was queued already, and that one stands

    def to_json(self) -> dict[str, Any]:
        return {**self.resync.to_json(), "queued": self.queued}


def request_resync(
    services: Services,
    field: str,
    *,
    modified_since: str | datetime | None = None,
    modified_until: str | datetime | None = None,
    actor: Actor,
) -> ResyncRequested:
    """Queue a re-sync of one selected account column, or ResyncError saying what to fix;
    recorded in the audit trail either way."""
    asked = {
        "field": field,
        "modified_since": modified_since,
        "modified_until": modified_until,
    }
    with audited(services, actor, AuditAction.RESYNC, before=asked) as record:
        requested = _request(services, field, modified_since, modified_until, by=actor.label)
        record.after = requested.to_json()
    return requested


def _request(
    services: Services,
    field: str,
    modified_since: str | datetime | None,
    modified_until: str | datetime | None,
    *,
    by: str,
) -> ResyncRequested:
    column = field.strip().lower()
    since, until = (
        _moment(modified_since, "modified_since"),
        _moment(modified_until, "modified_until"),
    )
    if since is not None and until is not None and until < since:
        raise ResyncError(
            ResyncProblem.BAD_RANGE, "modified_until is before modified_since; swap them"
        )
    selection = services.fields.get()
    if selection is None or column not in selection.columns:
        raise ResyncError(
            ResyncProblem.NOT_SELECTED,
            f"{column!r} is not a selected account field; select it with {HOW_TO_SELECT} "
            "(selecting it again re-syncs it)",
        )
    why = selection.unreadable.get(column)
    if why is not None:
        raise ResyncError(
            ResyncProblem.UNREADABLE,
            f"the Dynamics sync user cannot read {column!r} now, so it cannot be re-synced: "
            f"{why.why}",
        )
    for queued in services.resyncs.active():
        same = (queued.field, queued.modified_since, queued.modified_until) == (
            column,
            since,
            until,
        )
        if same and queued.status is ResyncStatus.QUEUED:
            return ResyncRequested(queued, queued=False)
    request = new_resync(column, now=utcnow(), by=by, modified_since=since, modified_until=until)
    return ResyncRequested(services.resyncs.add(request), queued=True)


def resync_status(services: Services) -> tuple[Resync, ...]:
    """Every queued, running and recently finished re-sync, the oldest first."""
    return tuple(services.resyncs.all())


def cycle_finished(services: Services, resync_id: str, cycle_id: str, refreshed: int) -> None:
    """A cycle that read a chunk of `resync_id` has applied it: count what it wrote, and end
    the re-sync when that was its last chunk."""
    request = services.resyncs.get(resync_id)
    if request is None or not request.status.active:
        return
    done = request.status is ResyncStatus.APPLYING and request.cycle_id == cycle_id
    services.resyncs.save(
        replace(
            request,
            refreshed=request.refreshed + refreshed,
            status=ResyncStatus.FINISHED if done else request.status,
            finished_at=utcnow() if done else None,
        )
    )


def _moment(value: str | datetime | None, name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if not value.strip():
        return None
    try:
        moment = parse_iso(value)
    except ValueError:
        raise ResyncError(
            ResyncProblem.BAD_RANGE,
            f"{name}={value!r} is not an ISO-8601 date-time with a zone, e.g. 2026-01-31T00:00:00Z",
        ) from None
    if not within_dataverse(moment):
        # Dynamics refuses a filter on a time it cannot hold; the range is read from Dynamics.
        raise ResyncError(
            ResyncProblem.BAD_RANGE,
            f"{name}={value!r} is outside what Dynamics holds ({DATAVERSE_EARLIEST:%Y-%m-%d} to "
            f"{DATAVERSE_LATEST:%Y-%m-%d}); leave it out to mean every account",
        )
    return moment
