"""The bodies the HTTP API takes and answers; the OpenAPI description is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.sync.pause_resume import checked_reason
from shared.web.status_models import ResyncRow, VerifyRequestRow


class ErrorDetail(BaseModel):
    code: str = Field(description="a word a script can test, e.g. `account_not_found`")
    message: str = Field(description="what happened and what to do")


class ErrorBody(BaseModel):
    error: ErrorDetail


FORMATTED_HELP = (
    "labels of `fields` as Dynamics formats them for the sync user (an option's label, a "
    "lookup's name, money with its symbol, a date in the user's time zone), where they say "
    "more than the raw value; display only: `fields` holds the values"
)


class AccountValues(BaseModel):
    """What every answer about an account opens with: its id, its selected columns' values and
    their labels (the single account and a list's item add their own keys after these)."""

    accountid: str
    fields: dict[str, Any] = Field(description="the selected columns, by logical name")
    formatted: dict[str, str] = Field(default_factory=dict, description=FORMATTED_HELP)


class Account(AccountValues):
    display_names: dict[str, str] = Field(
        default_factory=dict, description="the selected columns' display names in Dynamics"
    )
    contact_count: int = Field(description="live contacts of the account in the mirror")
    is_deleted: bool
    locally_modified: list[str] = Field(
        description="fields changed through a contact since Dynamics last changed the account"
    )
    synced_at: str | None
    sync_filtered: bool = Field(
        False,
        description="the sync filter column is No in Dynamics: kept as it was, no longer synced",
    )


class Contact(BaseModel):
    contactid: str
    accountid: str | None
    fields: dict[str, Any]
    formatted: dict[str, str] = Field(default_factory=dict, description=FORMATTED_HELP)
    account: dict[str, Any] | None = Field(description="the fields of the contact's account")
    account_formatted: dict[str, str] = Field(
        default_factory=dict, description="the labels of `account` (see `formatted`)"
    )
    is_deleted: bool
    account_sync_filtered: bool = Field(
        False, description="the contact's account no longer syncs (see Account.sync_filtered)"
    )


class AccountEdit(BaseModel):
    """A local edit of the contact's account: never sent to Dynamics."""

    model_config = ConfigDict(extra="forbid")
    fields: dict[str, Any] = Field(description="column logical name -> Web API value")


class EditResult(BaseModel):
    accountid: str
    changed: list[str]
    activities_logged: int
    activities_suppressed: int
    account: Account | None


class Activity(BaseModel):
    type: str = Field(examples=["Change Data Value"])
    field: str
    old: Any
    new: Any
    reason: str
    source: str
    at: str
    accountid: str
    old_truncated: bool | None = Field(
        None, description="present when the old value was too long to keep whole"
    )
    new_truncated: bool | None = None


class Column(BaseModel):
    name: str
    type: str
    display_name: str
    readable: bool
    secured: bool
    selected: bool
    why: str | None = Field(None, description="why the sync user cannot read it, when so")
    limits: dict[str, Any] | None = Field(
        None, description="what Dynamics lets a selected column hold (local edits keep to it)"
    )


class CheckRow(BaseModel):
    check: str
    status: Literal["pass", "warn", "fail"]
    detail: str
    fix: str | None = Field(None, description="what to do, when the check warns or fails")


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(
        default="", max_length=500, description="why, for the audit trail and the status"
    )

    @field_validator("reason")
    @classmethod
    def _one_printable_line(cls, reason: str) -> str:
        return checked_reason(reason)


class PauseState(BaseModel):
    paused: bool
    paused_since: str | None = None
    was_paused_since: str | None = None


class FieldSelectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt property is refused, not ignored
    selected: list[str] = Field(description="the account columns to sync, by logical name")


class FieldSelectionResult(BaseModel):
    selected: list[str]
    added: list[str] = Field(description="selected now and not before (or readable again)")
    removed: list[str] = Field(description="no longer selected: they stop syncing, values kept")
    backfill: list[str] = Field(description="newly selected: loaded for every account, silently")


class ResyncRequest(BaseModel):
    """Re-sync one selected account column: every account (Quick Sync), or those created or
    modified in the range (Advanced Sync)."""

    model_config = ConfigDict(extra="forbid")
    field: str = Field(description="the selected account column, by logical name")
    modified_since: str | None = Field(None, description="ISO-8601, e.g. 2026-01-01T00:00:00Z")
    modified_until: str | None = Field(None, description="ISO-8601; either bound may be open")


class ResyncState(ResyncRow):
    """The re-sync asked for, as status lists it under `resyncs`."""

    queued: bool = Field(True, description="false: the same re-sync was queued already")


class RetryRequest(BaseModel):
    """Which sync errors to retry: naming one of `ids`, with `code`, or (neither) all."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = Field(None, description="record ids, as Sync Errors shows them")
    code: str | None = Field(None, description="an error code, e.g. `unstorable_value`")


class RetriedRecord(BaseModel):
    entity: Literal["account", "contact"]
    id: str
    resolved: bool
    message: str = Field(description="why it still fails, when it does")


class SkippedError(BaseModel):
    entity: str
    id: str
    code: str
    reason: str = Field(description="why it was not retried, and what to do instead")


class RetryResult(BaseModel):
    retried: int = Field(description="records read again from Dynamics and applied")
    resolved: int
    still_failing: int
    skipped: int = Field(description="errors that name no record to read again")
    activities_logged: int
    activities_suppressed: int
    dataverse_requests: int
    records: list[RetriedRecord]
    skipped_errors: list[SkippedError]


class VerifyRequestBody(BaseModel):
    """Start a verify of the mirror against Dynamics at the next heartbeat without a cycle."""

    # Strict: `"yes"` or `1` is a 422, not a verify (and a repair) nobody asked for.
    model_config = ConfigDict(extra="forbid", strict=True)
    repair: bool = Field(False, description="re-read the drifted records and apply them")
    deep: bool = Field(False, description="also compare the selected columns' values")


class VerifyRequested(VerifyRequestRow):
    queued: bool = Field(description="false: a verify was asked for already; this is that one")
