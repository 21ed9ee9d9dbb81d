"""Select Fields to Sync: every account column, whether the sync user can read it and why
not, which are selected; saving names each unreadable column, as the CLI does; a newly saved
column shows how far its backfill has come."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.dataverse.columns import Unreadable
from shared.sync.resync_requests import ResyncError, request_resync, resync_status
from shared.sync.select_fields import (
    FieldResyncPending,
    FieldSelectionError,
    edit_fields,
    list_fields,
)
from shared.sync.status import sync_status
from shared.web.console.filters import day_end, day_start
from shared.web.console.pages import AdminFormDep, SessionDep, render, signed_in
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class SavedChange:
    """What the last save added and removed (column names, comma-separated), to show."""

    added: str
    removed: str


@router.get("/fields")
def fields_page(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    saved: str = "",
    resync: str = "",
    added: str = "",
    removed: str = "",
) -> Response:
    return _page(
        request,
        services,
        session,
        saved=SavedChange(added, removed) if saved == "1" else None,
        resync_queued=resync == "1",
    )


@router.post("/fields")
def save_fields(request: Request, services: ServicesDep, form: AdminFormDep) -> Response:
    session = signed_in(request)
    ticked = form.get("selected", [])
    # Only what was ticked or unticked changes: a selected column the sync user cannot read
    # now stays selected unless it was unticked (saving the page must not refuse over it).
    stored = services.fields.get()
    selected = list(stored.columns) if stored else []
    try:
        change = edit_fields(
            services,
            actor=session.actor,
            add=[n for n in ticked if n not in selected],
            remove=[n for n in selected if n not in ticked],
        )
    except (FieldSelectionError, FieldResyncPending) as error:
        # Nothing was stored: the page shows the stored selection again, and why not.
        return _page(request, services, session, problem=str(error), status=422)
    told = {"saved": "1", "added": ", ".join(change.added), "removed": ", ".join(change.removed)}
    return RedirectResponse(f"/fields?{urlencode(told)}", 303)


@router.post("/fields/resync")
def resync_field(request: Request, services: ServicesDep, form: AdminFormDep) -> Response:
    """Quick Sync (no dates) or Advanced Sync (a created-or-modified range) of one column."""
    session = signed_in(request)
    field = (form.get("field") or [""])[0]
    # The page's date inputs are whole days: from the start of one to the end of the other.
    try:
        since = day_start((form.get("modified_since") or [""])[0])
        until = day_end((form.get("modified_until") or [""])[0])
    except ValueError:
        return _page(request, services, session, problem="dates are YYYY-MM-DD", status=422)
    try:
        request_resync(
            services, field, modified_since=since, modified_until=until, actor=session.actor
        )
    except ResyncError as error:
        return _page(request, services, session, problem=str(error), status=422)
    return RedirectResponse("/fields?resync=1", 303)


def _page(
    request: Request,
    services: ServicesDep,
    session: Any,
    *,
    saved: SavedChange | None = None,
    resync_queued: bool = False,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    columns = list_fields(services)
    context = {
        "columns": columns,
        "selected_count": sum(1 for c in columns if c["selected"]),
        "backfill": backfill_progress(services),
        "saved": saved is not None,
        "added": saved.added if saved else "",
        "removed": saved.removed if saved else "",
        "resync_queued": resync_queued,
        # Every one still queued or running (and the finished ones status keeps), newest first.
        "resyncs": [resync.to_json() for resync in reversed(resync_status(services))],
        "problem": problem,
        "deleted_why": Unreadable.DELETED.why,  # a selected column Dynamics no longer has
    }
    return render(request, "fields.html", context, session=session, status=status)


def backfill_progress(services: ServicesDep) -> list[dict[str, str]]:
    """Each column being backfilled or backfilled lately, and where its backfill stands."""
    selection = services.fields.get()
    waiting = list(selection.backfill) if selection else []
    status = sync_status(services, cycles=10, errors=0).to_json()
    plan = status["current_plan"] or {}
    loading = set(plan.get("backfill") or [])
    read = status["checkpoints"].get("accounts", {}).get("rows_read")
    rows: list[dict[str, str]] = []
    for column in waiting:
        if column in loading:
            accounts = plan.get("tables", {}).get("accounts", {}).get("changed", 0)
            so_far = f"{read:,} accounts read" if read else f"{accounts:,} accounts read"
            rows.append({"column": column, "state": "loading", "detail": so_far})
        else:
            rows.append(
                {
                    "column": column,
                    "state": "waiting",
                    "detail": "the next cycle loads it for every account (no activities)",
                }
            )
    for cycle in status["last_cycles"]:
        for column in cycle.get("backfill") or []:
            if column in waiting or any(r["column"] == column for r in rows):
                continue
            applied = int(cycle.get("accounts_applied", 0))
            rows.append(
                {
                    "column": column,
                    "state": "done" if cycle.get("status") != "in_process" else "loading",
                    "detail": f"cycle {cycle.get('cycle_id')} "
                    f"({cycle.get('status')}, {cycle.get('finished_at') or 'running'}): "
                    f"{applied:,} accounts written",
                }
            )
    return rows
