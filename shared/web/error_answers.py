"""Every error the API answers is {"error": {"code", "message"}}: its own refusals, FastAPI's
validation errors, unknown routes and methods, and failures. The message says what to do."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from shared.errors import AcctsyncError
from shared.settings import SettingsError

logger = logging.getLogger(__name__)

# What a request that names a route but not one of its methods should do instead.
METHOD_HINTS = {
    "/api/accounts/{accountid}": (
        "accounts change in Dynamics, and locally through a contact: "
        "PATCH /api/contacts/{contactid}/account"
    ),
    "/api/contacts/{contactid}": (
        "to change the contact's account fields, PATCH /api/contacts/{contactid}/account"
    ),
}
# What a request body of each route must look like.
BODY_HINTS = {
    "/api/contacts/{contactid}/account": 'send {"fields": {"<column>": <value>, ...}}',
    "/api/sync/fields": 'send {"selected": ["name", "revenue", ...]}',
    "/api/sync/errors/retry": 'send {"ids": ["<record id>", ...]}, {"code": "<code>"} or {}',
    "/api/sync/verify": 'send {"repair": true|false, "deep": true|false}, or no body',
}


class ApiError(AcctsyncError):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


async def _api_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error.status, error.code, error.message)


async def _invalid(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems: list[dict[str, Any]] = list(error.errors())
    if any(p.get("type") == "json_invalid" for p in problems):
        return error_response(400, "invalid_json", "the body is not valid JSON")
    where = "; ".join(
        f"{'.'.join(str(part) for part in p.get('loc', ()))}: {p.get('msg')}" for p in problems[:5]
    )
    hint = BODY_HINTS.get(_route_path(request))
    in_body = any(p.get("loc", ("",))[0] == "body" for p in problems)
    code = "invalid_body" if in_body else "invalid_request"
    return error_response(422, code, f"{where}" + (f"; {hint}" if hint and in_body else ""))


async def _http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return error_response(404, "not_found", f"no route {request.url.path}; see /api/docs")
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        path = _route_path(request)
        hint = METHOD_HINTS.get(path) or f"use {allowed}"
        message = f"{request.method} is not allowed on {path}: {hint}"
        return error_response(405, "method_not_allowed", message, Allow=allowed)
    return error_response(error.status_code, f"http_{error.status_code}", str(error.detail))


async def _not_configured(request: Request, error: Exception) -> JSONResponse:
    return error_response(503, "not_configured", str(error))


async def _failed(request: Request, error: Exception) -> JSONResponse:
    logger.exception("API request failed: %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "the request failed; see the logs")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(SettingsError, _not_configured)
    app.add_exception_handler(Exception, _failed)
