"""The bodies the HTTP API takes and answers; the OpenAPI description is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="a word a script can test, e.g. `account_not_found`")
    message: str = Field(description="what happened and what to do")


class ErrorBody(BaseModel):
    error: ErrorDetail


class Account(BaseModel):
    accountid: str
    fields: dict[str, Any] = Field(description="the selected columns, by logical name")
    contact_count: int = Field(description="live contacts of the account in the mirror")
    is_deleted: bool
    locally_modified: list[str] = Field(
        description="fields changed through a contact since Dynamics last changed the account"
    )
    synced_at: str | None


class Contact(BaseModel):
    contactid: str
    accountid: str | None
    fields: dict[str, Any]
    account: dict[str, Any] | None = Field(description="the fields of the contact's account")
    is_deleted: bool


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


class PauseState(BaseModel):
    paused: bool
    paused_since: str | None = None
    was_paused_since: str | None = None


class FieldSelectionRequest(BaseModel):
    selected: list[str] = Field(description="the account columns to sync, by logical name")


class FieldSelectionResult(BaseModel):
    selected: list[str]
    backfill: list[str] = Field(description="newly selected: loaded for every account, silently")
