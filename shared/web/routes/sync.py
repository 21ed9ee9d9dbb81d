"""The sync itself: status, and the account columns it mirrors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shared.sync.fields import FieldSelectionError, list_fields, select_fields
from shared.sync.status import sync_status
from shared.web.errors import ApiError
from shared.web.models import Column, FieldSelectionRequest, FieldSelectionResult
from shared.web.routes.depends import ERRORS, ServicesDep

router = APIRouter(prefix="/api/sync", tags=["sync"], responses=ERRORS)


@router.get("/status", summary="What `acctsync status` prints")
def get_status(services: ServicesDep) -> dict[str, Any]:
    return sync_status(services)


@router.get("/fields", summary="Every account column: readable by the sync user, selected")
def get_fields(services: ServicesDep) -> list[Column]:
    return [Column(**column) for column in list_fields(services)]


@router.put("/fields", summary="Store the selection of account columns to sync")
def put_fields(body: FieldSelectionRequest, services: ServicesDep) -> FieldSelectionResult:
    try:
        selection = select_fields(services, body.selected)
    except FieldSelectionError as error:
        raise ApiError(422, "invalid_fields", str(error)) from None
    return FieldSelectionResult(selected=list(selection.columns), backfill=selection.backfill)
