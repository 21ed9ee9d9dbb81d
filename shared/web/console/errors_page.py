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
from shared.services import Services
from shared.state.sync_errors import ErrorCode, ErrorFilter
from shared.sync.retry import record_of, retry_errors
from shared.web.console.filters import (
    SHOWN,
    SearchedList,
    SearchQuery,
    choice,
)
from shared.web.console.pages import OperatorFormDep, SessionDep, first, signed_in
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
ENTITIES = ("account", "contact", "batch", "cycle")
CODES = tuple(c.value for c in ErrorCode)


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
    shows = {"done": done, "entities": ENTITIES, "codes": CODES}
    return SYNC_ERRORS.page(request, services, query, session=session, shows=shows)


@router.get("/errors.csv")
def errors_csv(services: ServicesDep, session: SessionDep, query: QueryDep) -> Response:
    return SYNC_ERRORS.csv(services, query)


def _errors(services: Services, wanted: ErrorFilter) -> list[dict[str, Any]]:
    """The errors as the list shows them, each with the record its Retry reads again."""
    errors = services.errors.search(wanted, count=SHOWN)
    return [{**e.to_json(), "retry_id": record_of(e)} for e in errors]


SYNC_ERRORS = SearchedList(
    template="errors.html",
    csv_name="acctsync-sync-errors.csv",
    header=("at", "entity", "id", "operation", "code", "message", "cycle_id"),
    rows=_errors,
    kept_days=lambda settings: settings.error_retention_days,
)


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
