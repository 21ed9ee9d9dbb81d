"""The audit trail of admin actions and sign-ins, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shared.mirror.tokens import Walk
from shared.web.paged_answers import AuditItem, AuditPage
from shared.web.routes.depends import ERRORS, ServicesDep
from shared.web.routes.paging import Limit, PageToken, parse_time, position_of

router = APIRouter(tags=["audit"], responses=ERRORS)
AuditSince = Annotated[
    str | None, Query(description="only entries at or after this ISO-8601 time (Z or offset)")
]


@router.get(
    "/api/audit",
    summary="The audit trail: every admin action and console sign-in, newest first",
    description="Who (an Entra user, the API key, or the CLI's user@host), when, what, the "
    "values before and after, and the outcome. Kept AUDIT_RETENTION_DAYS (365 by default).",
)
def get_audit(
    services: ServicesDep,
    limit: Limit = 100,
    page_token: PageToken = None,
    since: AuditSince = None,
) -> AuditPage:
    start = parse_time("since", since) if since else None
    walk = Walk.of("audit", since=since)
    position = position_of(services.page_tokens, walk, page_token)
    after = str(position["after"]) if position else None
    entries, last = services.audit.page(after=after, since=start, limit=limit)
    token = services.page_tokens.issue(walk, {"after": last}) if last else None
    return AuditPage(items=[AuditItem(**e.to_json()) for e in entries], nextPageToken=token)
