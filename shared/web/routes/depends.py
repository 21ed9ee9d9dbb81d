"""What route handlers receive: the process's services, and ids checked before use."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path

from shared.ids import InvalidId, parse_guid
from shared.services import Services, get_services
from shared.web.error_answers import ApiError
from shared.web.models import ErrorBody

ServicesDep = Annotated[Services, Depends(get_services)]
GuidPath = Annotated[str, Path(json_schema_extra={"format": "uuid"})]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 405, 409, 413, 422, 503)
}


def guid(value: str) -> str:
    """An id from the path as a GUID (400 otherwise: it would become a table key)."""
    try:
        return parse_guid(value)
    except InvalidId as error:
        raise ApiError(400, "invalid_id", str(error)) from None
