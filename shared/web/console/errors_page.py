"""Sync Errors: the record-level and job-level errors the cycles recorded, searchable by
record id and text, filtered, exported as CSV; kept for SYNC_ERROR_RETENTION_DAYS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.state.errors import ErrorCode, ErrorFilter
from shared.web.console.filters import csv_response, date_range
from shared.web.console.pages import SessionDep, render
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
ENTITIES = ("account", "contact", "batch", "cycle")
CODES = tuple(c.value for c in ErrorCode)
SHOWN = 500
CSV_FIELDS = ("at", "entity", "id", "operation", "code", "message", "cycle_id")


def _filter(
    q: str, entity: str, code: str, cycle: str, since: str, until: str
) -> tuple[ErrorFilter, str | None]:
    start, end, problem = date_range(since, until)
    wanted = ErrorFilter(
        text=q[:200],
        entity=entity if entity in ENTITIES else "",
        code=code if code in CODES else "",
        cycle_id=cycle.strip()[:100],
        since=start,
        until=end,
    )
    return wanted, problem


@router.get("/errors")
def errors_page(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    q: str = "",
    entity: str = "",
    code: str = "",
    cycle: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    wanted, problem = _filter(q, entity, code, cycle, since, until)
    errors = services.errors.search(wanted, count=SHOWN)
    context: dict[str, Any] = {
        "errors": errors,
        "form": {"q": q, "entity": wanted.entity, "code": wanted.code, "cycle": cycle},
        "since": since,
        "until": until,
        "entities": ENTITIES,
        "codes": CODES,
        "problem": problem,
        "shown": SHOWN,
        "retention_days": services.settings.error_retention_days,
        "query": request.url.query,
    }
    return render(request, "errors.html", context, session=session)


@router.get("/errors.csv")
def errors_csv(
    services: ServicesDep,
    session: SessionDep,
    q: str = "",
    entity: str = "",
    code: str = "",
    cycle: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    wanted, _ = _filter(q, entity, code, cycle, since, until)
    errors = services.errors.search(wanted, count=SHOWN)
    rows = ([e[k] for k in CSV_FIELDS] for e in errors)
    return csv_response("acctsync-sync-errors.csv", CSV_FIELDS, rows)
