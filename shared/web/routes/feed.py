"""The change feeds, Marketo style: a paging token from a point in time, then pages of what
was logged after it (Change Data Value activities; accounts and contacts deleted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from shared.mirror.activities import feed_activities_json
from shared.mirror.activity_feed import activity_page
from shared.mirror.feed_index import Scan, Stream, start_position
from shared.mirror.tokens import Walk
from shared.services import Services
from shared.times import iso_precise
from shared.web.paged_answers import (
    ActivityPage,
    DeletedPage,
    DeletedRecord,
    FeedActivity,
    PagingToken,
)
from shared.web.routes.depends import ERRORS, ServicesDep
from shared.web.routes.paging import Limit, Since, parse_time, position_of

router = APIRouter(tags=["change feeds"], responses=ERRORS)

ACTIVITIES = Walk.of("activities")
DELETED = Walk.of("deleted")
FEED = (
    "Send the token from the pagingtoken route as `pageToken`, then each answer's "
    "`nextPageToken`. Following the tokens from any point yields every entry logged after it "
    "exactly once, in logging order, also while cycles write and when a batch is applied "
    "again. `moreResult: false` means caught up: keep the token and ask again later. Entries "
    "appear a few seconds after they are logged (once no slower writer can still log before "
    "them). A malformed, changed or expired token is a 400."
)
Required = Annotated[
    str, Query(alias="pageToken", description="from the pagingtoken route, or nextPageToken")
]


def _token_route(walk: Walk) -> Callable[[str, Services], PagingToken]:
    def first_token(since: Since, services: ServicesDep) -> PagingToken:
        at = parse_time("since", since)
        position = {"after": start_position(int(at.timestamp() * 1000))}
        return PagingToken(nextPageToken=services.page_tokens.issue(walk, position))

    return first_token


for _walk, _what in ((ACTIVITIES, "the activity feed"), (DELETED, "the deleted-records feed")):
    router.add_api_route(
        f"/api/{_walk.route}/pagingtoken",
        _token_route(_walk),
        methods=["GET"],
        summary=f"A pageToken for {_what} from a point in time",
        response_model=PagingToken,
    )


def _scan(
    services: Services, walk: Walk, stream: Stream, token: str, limit: int
) -> tuple[Scan, str]:
    """A page of a feed and the token of the next."""
    position = position_of(services.page_tokens, walk, token) or {}
    scan = services.feed.page(stream, position, limit)
    return scan, services.page_tokens.issue(walk, scan.token_position())


@router.get(
    "/api/activities",
    summary="Change Data Value activities of every contact, in logging order",
    description=FEED,
    response_model_exclude_none=True,
)
def activity_feed(
    page_token: Required,
    services: ServicesDep,
    fields: Annotated[
        str | None,
        Query(description="comma-separated account fields: only activities of these"),
    ] = None,
    limit: Limit = 300,
) -> ActivityPage:
    position = position_of(services.page_tokens, ACTIVITIES, page_token) or {}
    wanted = {f.strip() for f in fields.split(",") if f.strip()} if fields else None
    page = activity_page(services.feed, position, limit, fields=wanted)
    items = [FeedActivity(**activity) for activity in feed_activities_json(page.items)]
    next_token = services.page_tokens.issue(ACTIVITIES, page.position)
    return ActivityPage(items=items, nextPageToken=next_token, moreResult=page.more)


def deleted_record(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": entry["type"],
        "id": entry["id"],
        "deleted_at": iso_precise(entry["deleted_at"]),
    }


@router.get(
    "/api/deleted",
    summary="Accounts and contacts deleted in Dynamics, in the order the mirror flagged them",
    description=FEED,
)
def deleted_feed(page_token: Required, services: ServicesDep, limit: Limit = 300) -> DeletedPage:
    scan, next_token = _scan(services, DELETED, Stream.DELETED, page_token, limit)
    items = [DeletedRecord(**deleted_record(entry)) for entry in scan.entries]
    return DeletedPage(items=items, nextPageToken=next_token, moreResult=scan.more)
