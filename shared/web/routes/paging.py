"""What the paged routes share: their query parameters, and tokens read into positions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query

from shared.mirror.tokens import PageTokens, TokenError, Walk
from shared.times import parse_iso
from shared.web.error_answers import ApiError

MAX_LIMIT = 1000

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, at most {MAX_LIMIT}")
]
PageToken = Annotated[
    str | None,
    Query(
        alias="pageToken",
        description="the nextPageToken of the previous page, unchanged; none for the first page",
    ),
]
IncludeDeleted = Annotated[
    bool, Query(description="also the records deleted in Dynamics (`is_deleted: true`)")
]
ModifiedSince = Annotated[
    str | None,
    Query(
        description="only records the mirror synced from Dynamics at or after this ISO-8601 "
        "time (with Z or an offset): those a table's first load wrote (in key order), then "
        "the others in the order they were synced; a record synced again "
        "while the walk goes on comes again later with its newer values. Before the oldest "
        "time the feeds' retention (FEED_RETENTION_DAYS) still holds whole: 400 "
        "`modified_since_too_old`"
    ),
]
Search = Annotated[
    str | None,
    Query(
        max_length=200,
        description="only accounts whose name, contacts whose name or email, starts with this "
        "text, whatever the case; in the order of those values",
    ),
]
Since = Annotated[
    str, Query(description="ISO-8601 time with Z or an offset: the feed starts there")
]


@dataclass
class ListQuery:
    """The query parameters of a list."""

    limit: Limit = 100
    page_token: PageToken = None
    modified_since: ModifiedSince = None
    include_deleted: IncludeDeleted = False
    search: Search = None


def search_text(search: str | None) -> str | None:
    """The text to search for; None for a plain list (no text, or only spaces)."""
    return (search or "").strip() or None


def parse_time(name: str, value: str) -> datetime:
    try:
        return parse_iso(value)
    except ValueError:
        raise ApiError(
            422,
            "invalid_time",
            f"{name}={value!r} is not an ISO-8601 time; use e.g. 2026-12-01T00:00:00Z",
        ) from None


def position_of(tokens: PageTokens, walk: Walk, token: str | None) -> dict[str, Any] | None:
    """The position a pageToken holds (None without one); 400 for a token to refuse."""
    if token is None:
        return None
    try:
        return tokens.read(walk, token)
    except TokenError as error:
        raise ApiError(400, error.code, str(error)) from None
