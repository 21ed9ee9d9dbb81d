"""Audit log: every admin action and console sign-in, newest first: who, when, what, the values
before and after and the outcome; searched, filtered by action, outcome and date, exported as
CSV. Read-only: nothing in the console edits or removes an entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from shared.services import Services
from shared.state.audit_trail import AuditAction, AuditEntry, AuditFilter, Outcome
from shared.web.console.filters import (
    SHOWN,
    SearchedList,
    SearchQuery,
    choice,
)
from shared.web.console.pages import SessionDep
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
ACTIONS = tuple(a.value for a in AuditAction)
OUTCOMES = tuple(o.value for o in Outcome)


@dataclass(frozen=True)
class AuditQuery(SearchQuery[AuditFilter]):
    """The audit log's search and filters."""

    action: str = ""
    outcome: str = ""

    def filter(self, since: datetime | None, until: datetime | None) -> AuditFilter:
        action, outcome = choice(self.action, ACTIONS), choice(self.outcome, OUTCOMES)
        return AuditFilter(text=self.text, action=action, outcome=outcome, since=since, until=until)


QueryDep = Annotated[AuditQuery, Depends()]


@router.get("/audit")
def audit_page(
    request: Request, services: ServicesDep, session: SessionDep, query: QueryDep
) -> Response:
    choices = {"actions": ACTIONS, "outcomes": OUTCOMES}
    return AUDIT_LOG.page(request, services, query, session=session, shows=choices)


@router.get("/audit.csv")
def audit_csv(services: ServicesDep, session: SessionDep, query: QueryDep) -> Response:
    return AUDIT_LOG.csv(services, query)


def _entries(services: Services, wanted: AuditFilter) -> list[dict[str, Any]]:
    return [_shown(e) for e in services.audit.search(wanted, count=SHOWN)]


AUDIT_LOG = SearchedList(
    template="audit.html",
    csv_name="acctsync-audit-log.csv",
    header=("at", "actor", "actor_id", "action", "before", "after", "outcome", "detail"),
    rows=_entries,
    kept_days=lambda settings: settings.audit_retention_days,
)


def _shown(entry: AuditEntry) -> dict[str, Any]:
    """An entry with its values as compact JSON text, as the table and the CSV show them."""
    shown = entry.to_json()
    for key in ("before", "after"):
        value = shown[key]
        shown[key] = "" if value is None else json.dumps(value, sort_keys=True)
    return shown
