"""The sync itself: status, and the account columns it mirrors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shared.dataverse.problems import DataverseError
from shared.setup.validate import validate
from shared.state.audit_trail import Actor
from shared.sync.pause_resume import pause_sync, resume_sync
from shared.sync.resync_requests import ResyncError, request_resync
from shared.sync.retry import UnknownErrorCode, retry_errors
from shared.sync.select_fields import (
    FieldResyncPending,
    FieldSelectionError,
    list_fields,
    select_fields,
)
from shared.sync.status import sync_status
from shared.verify.requests import request_verify
from shared.web.error_answers import ApiError
from shared.web.models import (
    CheckRow,
    Column,
    FieldSelectionRequest,
    FieldSelectionResult,
    PauseRequest,
    PauseState,
    ResyncRequest,
    ResyncState,
    RetryRequest,
    RetryResult,
    VerifyRequestBody,
    VerifyRequested,
)
from shared.web.routes.depends import ERRORS, ServicesDep
from shared.web.status_models import SyncStatusBody

router = APIRouter(prefix="/api/sync", tags=["sync"], responses=ERRORS)
# Whoever holds the API's key (a function key in Azure) acts as "api key": the key names no
# person, so scripts that change things should each have their own function key.
API_ACTOR = Actor.api_key()


# Unset fields stay out: a cycle row has only the fields its kind (running, finished) has.
@router.get("/status", summary="What `acctsync status` prints", response_model_exclude_unset=True)
def get_status(services: ServicesDep) -> SyncStatusBody:
    return SyncStatusBody(**sync_status(services).to_json())


@router.get("/fields", summary="Every account column: readable by the sync user, selected")
def get_fields(services: ServicesDep) -> list[Column]:
    return [Column(**column) for column in list_fields(services)]


@router.put("/fields", summary="Store the selection of account columns to sync")
def put_fields(body: FieldSelectionRequest, services: ServicesDep) -> FieldSelectionResult:
    try:
        change = select_fields(services, body.selected, actor=API_ACTOR)
    except FieldSelectionError as error:
        raise ApiError(422, "invalid_fields", str(error)) from None
    except FieldResyncPending as error:
        raise ApiError(409, "field_resync_pending", str(error)) from None
    return FieldSelectionResult(**change.to_json())


@router.get("/validate", summary="What `acctsync validate --json` prints: one row per check")
def get_validate(services: ServicesDep) -> list[CheckRow]:
    return [CheckRow(**row.to_json()) for row in validate(lambda: services.settings)]


@router.post("/pause", summary="Stop new cycles and steps; queued batches still apply")
def post_pause(services: ServicesDep, body: PauseRequest | None = None) -> PauseState:
    reason = body.reason if body is not None else ""
    return PauseState(**pause_sync(services, actor=API_ACTOR, reason=reason))


@router.post("/resume", summary="Let cycles start again, from the stored delta links")
def post_resume(services: ServicesDep) -> PauseState:
    state = resume_sync(services, actor=API_ACTOR)
    return PauseState(paused=False, was_paused_since=state["was_paused_since"])


@router.post(
    "/resync",
    summary="Re-sync one selected account column (Quick Sync, or Advanced Sync with a range)",
    description="Queued for the next cycles, which write the column's Dynamics values into every "
    "mirrored account (or those created or modified in the range), nulls included, over local "
    "edits, logging no activity. Status shows its progress under `resyncs`.",
    status_code=202,
)
def post_resync(body: ResyncRequest, services: ServicesDep) -> ResyncState:
    try:
        requested = request_resync(
            services,
            body.field,
            modified_since=body.modified_since,
            modified_until=body.modified_until,
            actor=API_ACTOR,
        )
    except ResyncError as error:
        raise ApiError(422, error.problem.value, str(error)) from None
    return ResyncState(**requested.to_json())


@router.post(
    "/errors/retry",
    summary="Retry failed records: read them again from Dynamics and apply them",
    description="The records named by unresolved sync errors (`ids`, `code`, or all) are read "
    "again and applied as a cycle would; each error then carries `retried_at` and `resolved`. "
    "Errors that name no record (a poisoned batch, a failed cycle) are skipped with the reason.",
)
def post_retry_errors(body: RetryRequest, services: ServicesDep) -> RetryResult:
    try:
        outcome = retry_errors(services, actor=API_ACTOR, code=body.code, ids=body.ids)
    except UnknownErrorCode as error:
        raise ApiError(422, "unknown_error_code", str(error)) from None
    except DataverseError as error:
        raise ApiError(
            502,
            "dataverse_unavailable",
            f"Dynamics 365 (Dataverse): {error}. Records retried before it stay retried; "
            "retry the rest later",
        ) from None
    return RetryResult(**outcome.to_json())


@router.get(
    "/verify",
    summary="The last verify's result (what `acctsync verify --json` prints)",
    description='`{"status": "never"}` until a verify has finished.',
)
def get_verify(services: ServicesDep) -> dict[str, Any]:
    last = services.verifies.last()
    if last is None:
        return {"status": "never"}
    return {"status": "failed" if last.error else "finished", **last.to_json()}


@router.post(
    "/verify",
    summary="Start a verify of the mirror against Dynamics",
    description="It starts at the next heartbeat that finds no cycle running (also while the "
    "sync is paused); GET /api/sync/verify answers its result once it has finished, and "
    "`verify` in the status shows it while it runs.",
    status_code=202,
)
def post_verify(services: ServicesDep, body: VerifyRequestBody | None = None) -> VerifyRequested:
    request, queued = request_verify(
        services,
        repair=body is not None and body.repair,
        deep=body is not None and body.deep,
        actor=API_ACTOR,
    )
    return VerifyRequested(**request.to_json(), queued=queued)
