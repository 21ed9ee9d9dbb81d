"""Sync Errors: the record-level and job-level errors the cycles recorded, searchable by
record id and text, filtered, exported as CSV; kept for SYNC_ERROR_RETENTION_DAYS. Retry (a
row) and Retry all read the records again from Dynamics (shared/sync/retry.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from shared.dataverse.problems import DataverseError
from shared.state.sync_errors import ErrorCode, ErrorFilter
from shared.sync.retry import record_of, retry_errors
from shared.web.console.filters import SearchQuery, choice, csv_response, list_context
from shared.web.console.pages import OperatorFormDep, SessionDep, first, render, signed_in
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
ENTITIES = ("account", "contact", "batch", "cycle")
CODES = tuple(c.value for c in ErrorCode)
SHOWN = 500
CSV_FIELDS = ("at", "entity", "id", "operation", "code", "message", "cycle_id")


@dataclass(frozen=True)
class ErrorQuery(SearchQuery[ErrorFilter]):
    """The error list's search and filters."""

    entity: str = ""
    code: str = ""
    cycle: str = ""

    def filter(self, since: datetime | None, until: datetime | None) -> ErrorFilter:
        return ErrorFilter(
            text=self.text,
            entity=choice(self.entity, ENTITIES),
            code=choice(self.code, CODES),
            cycle_id=self.cycle.strip()[:100],
            since=since,
            until=until,
        )


QueryDep = Annotated[ErrorQuery, Depends()]


@dataclass(frozen=True)
class RetryDone:
    """What the last Retry / Retry all came to, as its redirect's query says."""

    retried: int = -1
    resolved: int = 0
    skipped: int = 0
    unavailable: str = ""


RetryDep = Annotated[RetryDone, Depends()]


@router.get("/errors")
def errors_page(
    request: Request, services: ServicesDep, session: SessionDep, query: QueryDep, done: RetryDep
) -> Response:
    wanted, problem = query.wanted()
    errors = services.errors.search(wanted, count=SHOWN)
    days = services.settings.error_retention_days
    context: dict[str, Any] = {
        **list_context(request, query, problem, shown=SHOWN, retention_days=days),
        "errors": [{**e.to_json(), "retry_id": record_of(e)} for e in errors],
        "done": done,
        "entities": ENTITIES,
        "codes": CODES,
    }
    return render(request, "errors.html", context, session=session)


@router.get("/errors.csv")
def errors_csv(services: ServicesDep, session: SessionDep, query: QueryDep) -> Response:
    wanted, _ = query.wanted()
    errors = services.errors.search(wanted, count=SHOWN)
    rows = ([e.to_json()[k] for k in CSV_FIELDS] for e in errors)
    return csv_response("acctsync-sync-errors.csv", CSV_FIELDS, rows)


@router.post("/errors/retry")
def retry(request: Request, services: ServicesDep, form: OperatorFormDep) -> Response:
    """Retry one record (`id`), or all unresolved errors (with the page's `code` filter)."""
    record_id, code = first(form, "id"), first(form, "code")
    try:
        outcome = retry_errors(
            services,
            actor=signed_in(request).actor,
            code=code if code in CODES else None,
            ids=[record_id] if record_id else None,
        )
    except DataverseError:
        return RedirectResponse("/errors?unavailable=1", 303)
    counts = outcome.to_json()
    done = {k: counts[k] for k in ("retried", "resolved", "skipped")}
    return RedirectResponse(f"/errors?{urlencode(done)}", 303)
