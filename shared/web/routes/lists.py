"""Paged lists of the mirror: accounts, contacts, and an account's contacts."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends

from shared.mirror.feed_index import RangeGone, Stream
from shared.mirror.record_walks import (
    Position,
    RecordPage,
    account_contacts_page,
    account_fields,
    account_item,
    contact_item,
    range_gone,
    records_page,
)
from shared.mirror.search import SearchKind, matches, search_page
from shared.mirror.tokens import Walk
from shared.services import Services
from shared.web.error_answers import ApiError
from shared.web.paged_answers import AccountItem, AccountPage, ContactItem, ContactPage
from shared.web.routes.depends import ERRORS, GuidPath, ServicesDep, guid
from shared.web.routes.paging import (
    IncludeDeleted,
    Limit,
    ListQuery,
    PageToken,
    Search,
    parse_time,
    position_of,
    search_text,
)

ListQueryDep = Annotated[ListQuery, Depends()]

router = APIRouter(tags=["lists"], responses=ERRORS)

PAGING = (
    "Pages of `limit` items with an opaque `nextPageToken`; send it back as `pageToken` for "
    "the next page, until it is null. Each page is one bounded query from where the last one "
    "stopped. Without `modified_since` the walk goes in key order and meets every record that "
    "is there for the whole walk exactly once; with it, the records a table's first load wrote "
    "(in key order), then the others in the order they were synced. "
    "With `search`, in the order of the names (or emails) that start with it; a page may come "
    "short of `limit` while the walk goes on."
)
SEARCH_ALONE = (
    "search and modified_since cannot be combined: search finds records by name (or email), "
    "modified_since walks them in the order they were synced; send one of them"
)


def _records_page(
    services: Services, listed: Literal["accounts", "contacts"], query: ListQuery
) -> tuple[RecordPage, str | None]:
    """A page of a list and the token of the next; the walk is fixed by its parameters."""
    text = search_text(query.search)
    walk = Walk.of(
        listed,
        include_deleted=query.include_deleted,
        modified_since=query.modified_since,
        search=text,
    )
    position = position_of(services.page_tokens, walk, query.page_token)
    try:
        page = _page(services, listed, query, text, position)
    except RangeGone as gone:
        days = services.settings.feed_retention_days
        raise ApiError(
            400,
            "modified_since_too_old",
            f"{range_gone(gone, days)}. For a full copy, list /api/{listed} without "
            "modified_since to the last page; then list with modified_since from when that "
            "walk started.",
        ) from None
    next_token = (
        services.page_tokens.issue(walk, page.position) if page.position is not None else None
    )
    return page, next_token


def _page(
    services: Services,
    listed: Literal["accounts", "contacts"],
    query: ListQuery,
    text: str | None,
    position: Position | None,
) -> RecordPage:
    """The page a list's parameters ask for: by name (`search`), by sync time
    (`modified_since`), or the whole table in key order."""
    accounts = listed == "accounts"
    records = services.accounts if accounts else services.contacts
    if text is not None:
        if query.modified_since:
            raise ApiError(422, "search_with_modified_since", SEARCH_ALONE)
        kind = SearchKind.ACCOUNT if accounts else SearchKind.CONTACT
        return search_page(
            services.search,
            kind,
            records,
            text,
            position,
            query.limit,
            include_deleted=query.include_deleted,
        )
    since = parse_time("modified_since", query.modified_since) if query.modified_since else None
    return records_page(
        services.feed,
        services.initial_loads,
        Stream.SYNCED_ACCOUNTS if accounts else Stream.SYNCED_CONTACTS,
        records,
        position,
        query.limit,
        since_ms=int(since.timestamp() * 1000) if since else None,
        include_deleted=query.include_deleted,
    )


@router.get("/api/accounts", summary="Mirrored accounts, a page at a time", description=PAGING)
def list_accounts(services: ServicesDep, query: ListQueryDep) -> AccountPage:
    page, next_token = _records_page(services, "accounts", query)
    fields = account_fields(services.fields.get())
    items = [AccountItem(**account_item(row, fields)) for row in page.rows]
    return AccountPage(items=items, nextPageToken=next_token)


@router.get("/api/contacts", summary="Mirrored contacts, a page at a time", description=PAGING)
def list_contacts(services: ServicesDep, query: ListQueryDep) -> ContactPage:
    page, next_token = _records_page(services, "contacts", query)
    items = [ContactItem(**contact_item(row)) for row in page.rows]
    return ContactPage(items=items, nextPageToken=next_token)


@router.get(
    "/api/accounts/{accountid}/contacts",
    summary="An account's contacts, a page at a time, in contact-id order",
    description=PAGING.split(" Without")[0]
    + " With `include_deleted`, also its contacts deleted in Dynamics.",
)
def list_account_contacts(
    accountid: GuidPath,
    services: ServicesDep,
    limit: Limit = 100,
    page_token: PageToken = None,
    include_deleted: IncludeDeleted = False,
    search: Search = None,
) -> ContactPage:
    account_id = guid(accountid)
    text = search_text(search)
    walk = Walk.of(f"accounts/{account_id}/contacts", include_deleted=include_deleted, search=text)
    position = position_of(services.page_tokens, walk, page_token)
    if position is None and services.accounts.get(account_id) is None:
        raise ApiError(404, "account_not_found", f"no mirrored account {account_id}")
    page = account_contacts_page(
        services.members,
        services.contacts,
        account_id,
        position,
        limit,
        include_deleted=include_deleted,
    )
    # An account's contacts are few: its own walk, filtered, rather than the whole index.
    rows = [r for r in page.rows if text is None or matches(SearchKind.CONTACT, r, text)]
    return ContactPage(
        items=[ContactItem(**contact_item(row)) for row in rows],
        nextPageToken=services.page_tokens.issue(walk, page.position) if page.position else None,
    )
