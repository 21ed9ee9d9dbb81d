"""The paged answers of the API (lists and change feeds); the OpenAPI description is generated
from them, so what they say here is the paging contract consumers read."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.web.models import FORMATTED_HELP, AccountValues, Activity

NEXT_PAGE_HELP = (
    "opaque: send it back unchanged as `pageToken` for the next page. null at the end of the "
    "walk. A token is signed: one that was changed, belongs to another route or other "
    "parameters, or is older than 7 days is a 400."
)
FEED_PAGE_HELP = NEXT_PAGE_HELP.replace(" null at the end of the walk.", "")
MORE_RESULT = (
    "true: more entries were already there, ask again at once with nextPageToken (a page can "
    "be short, even empty, and still have more). false: the feed is caught up; keep "
    "nextPageToken and ask again later for what is logged after."
)


class AccountItem(AccountValues):
    is_deleted: bool
    locally_modified: list[str]
    synced_at: str | None = Field(description="when the mirror last wrote it from Dynamics")


class ContactItem(BaseModel):
    contactid: str
    accountid: str | None
    fields: dict[str, Any]
    formatted: dict[str, str] = Field(default_factory=dict, description=FORMATTED_HELP)
    is_deleted: bool
    synced_at: str | None


class AccountPage(BaseModel):
    """One page of accounts. Following nextPageToken to its end meets every account that was
    in the mirror for the whole walk exactly once, however the mirror changes meanwhile."""

    items: list[AccountItem]
    nextPageToken: str | None = Field(description=NEXT_PAGE_HELP)


class ContactPage(BaseModel):
    """One page of contacts; the walk meets every contact that was there for the whole walk
    exactly once."""

    items: list[ContactItem]
    nextPageToken: str | None = Field(description=NEXT_PAGE_HELP)


class FeedActivity(Activity):
    contactid: str


class ActivityPage(BaseModel):
    """Change Data Value activities in the order they were logged. Following the tokens from
    any point yields every activity logged after it exactly once."""

    items: list[FeedActivity]
    nextPageToken: str = Field(description=FEED_PAGE_HELP)
    moreResult: bool = Field(description=MORE_RESULT)


class DeletedRecord(BaseModel):
    type: Literal["account", "contact"]
    id: str = Field(description="the accountid or contactid")
    deleted_at: str = Field(description="when the mirror flagged it deleted")


class DeletedPage(BaseModel):
    """Accounts and contacts flagged deleted, in the order the mirror flagged them; each
    exactly once from any point."""

    items: list[DeletedRecord]
    nextPageToken: str = Field(description=FEED_PAGE_HELP)
    moreResult: bool = Field(description=MORE_RESULT)


class PagingToken(BaseModel):
    nextPageToken: str = Field(description="the first pageToken of the feed from the time given")


class AuditItem(BaseModel):
    at: str = Field(description="when, ISO-8601 UTC")
    actor: str = Field(
        description='who: the Entra user "name (object id)", "api key", or the CLI\'s user@host'
    )
    actor_kind: Literal["entra", "api_key", "cli"]
    actor_id: str | None = Field(description="the Entra object id; null for the others")
    actor_name: str
    action: str = Field(
        description="field_selection, pause, resume, resync, retry, replay, cursor_reset, "
        "verify, repair or sign_in"
    )
    before: Any = Field(description="the value before (a selection, a pause, what was asked)")
    after: Any = Field(description="the value after, or what the action came to")
    outcome: Literal["succeeded", "failed", "refused"]
    detail: str | None = Field(description="why it failed or was refused")


class AuditPage(BaseModel):
    """One page of the audit trail, newest first."""

    items: list[AuditItem]
    nextPageToken: str | None = Field(description=NEXT_PAGE_HELP)
