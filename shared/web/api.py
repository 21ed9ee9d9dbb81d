"""The HTTP API as one ASGI application: served by the Functions app in Azure (through the
azure-functions ASGI support) and by the local host, so both run the same code.

Errors are always {"error": {"code", "message"}}; bad input is a 4xx and changes nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from shared.ids import InvalidId, parse_guid
from shared.mirror.records import fields_of
from shared.services import Services, get_services
from shared.settings import SettingsError
from shared.sync.edits import EditError, edit_account_through_contact
from shared.sync.fields import FieldSelectionError, list_fields, select_fields
from shared.sync.status import sync_status
from shared.times import iso
from shared.web.openapi import OPENAPI

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Request:
    params: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


Handler = Callable[[Services, Request], tuple[int, Any]]


def _guid(request: Request, name: str) -> str:
    try:
        return parse_guid(request.params[name])
    except InvalidId as error:
        raise ApiError(400, "invalid_id", str(error)) from None


def _account_view(services: Services, account_id: str) -> dict[str, Any] | None:
    row = services.accounts.get(account_id)
    if row is None:
        return None
    return {
        "accountid": account_id,
        "fields": _selected(services, fields_of(row)),
        "contact_count": services.members.count(account_id),
        "is_deleted": bool(row.get("is_deleted")),
        "locally_modified": json.loads(row.get("locally_modified") or "[]"),
        "synced_at": iso(row.get("synced_at")),
    }


def _selected(services: Services, fields: dict[str, Any]) -> dict[str, Any]:
    selection = services.fields.get()
    if selection is None:
        return fields
    return {name: fields.get(name) for name in selection.columns}


def get_account(services: Services, request: Request) -> tuple[int, Any]:
    account_id = _guid(request, "id")
    view = _account_view(services, account_id)
    if view is None:
        raise ApiError(404, "account_not_found", f"no mirrored account {account_id}")
    return 200, view


def create_account(services: Services, request: Request) -> tuple[int, Any]:
    raise ApiError(
        405,
        "accounts_come_from_dynamics",
        "accounts are created in Dynamics only; create it there and the next cycle mirrors it",
    )


def get_contact(services: Services, request: Request) -> tuple[int, Any]:
    contact_id = _guid(request, "id")
    row = services.contacts.get(contact_id)
    if row is None:
        raise ApiError(404, "contact_not_found", f"no mirrored contact {contact_id}")
    account_id = str(row.get("accountid") or "") or None
    account = services.accounts.get(account_id) if account_id else None
    return 200, {
        "contactid": contact_id,
        "accountid": account_id,
        "fields": fields_of(row),
        "account": _selected(services, fields_of(account)) if account is not None else None,
        "is_deleted": bool(row.get("is_deleted")),
    }


def patch_contact_account(services: Services, request: Request) -> tuple[int, Any]:
    contact_id = _guid(request, "id")
    body = request.json()
    if (
        not isinstance(body, dict)
        or set(body) != {"fields"}
        or not isinstance(body["fields"], dict)
    ):
        raise ApiError(422, "invalid_body", 'send {"fields": {"<column>": <value>, ...}}')
    try:
        result = edit_account_through_contact(services, contact_id, body["fields"])
    except EditError as error:
        raise ApiError(error.status, error.code, str(error)) from None
    return 200, {
        "accountid": result.account_id,
        "changed": result.changed,
        "activities_logged": result.activities_logged,
        "activities_suppressed": result.activities_suppressed,
        "account": _account_view(services, result.account_id),
    }


def get_activities(services: Services, request: Request) -> tuple[int, Any]:
    contact_id = _guid(request, "id")
    if services.contacts.get(contact_id) is None:
        raise ApiError(404, "contact_not_found", f"no mirrored contact {contact_id}")
    return 200, services.activities.for_contact(contact_id)


def get_status(services: Services, request: Request) -> tuple[int, Any]:
    return 200, sync_status(services)


def get_fields(services: Services, request: Request) -> tuple[int, Any]:
    return 200, list_fields(services)


def put_fields(services: Services, request: Request) -> tuple[int, Any]:
    body = request.json()
    selected = body.get("selected") if isinstance(body, dict) else None
    if not isinstance(selected, list) or not all(isinstance(n, str) for n in selected):
        raise ApiError(422, "invalid_body", 'send {"selected": ["name", "revenue", ...]}')
    try:
        selection = select_fields(services, selected)
    except FieldSelectionError as error:
        raise ApiError(422, "invalid_fields", str(error)) from None
    return 200, {"selected": list(selection.columns), "backfill": selection.backfill}


def get_openapi(services: Services, request: Request) -> tuple[int, Any]:
    return 200, OPENAPI


_ID = "(?P<id>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^/api/accounts$"), {"POST": create_account}),
    # Writing an account any way but the sync is refused: accounts come from Dynamics.
    (
        re.compile(rf"^/api/accounts/{_ID}$"),
        {"GET": get_account, "POST": create_account, "PUT": create_account},
    ),
    (re.compile(rf"^/api/contacts/{_ID}$"), {"GET": get_contact}),
    (re.compile(rf"^/api/contacts/{_ID}/account$"), {"PATCH": patch_contact_account}),
    (re.compile(rf"^/api/contacts/{_ID}/activities$"), {"GET": get_activities}),
    (re.compile(r"^/api/sync/status$"), {"GET": get_status}),
    (re.compile(r"^/api/sync/fields$"), {"GET": get_fields, "PUT": put_fields}),
    (re.compile(r"^/api/openapi\.json$"), {"GET": get_openapi}),
]


def _route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    for pattern, handlers in ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        handler = handlers.get(method)
        if handler is None:
            allowed = ", ".join(sorted(handlers))
            raise ApiError(
                405, "method_not_allowed", f"{method} is not allowed here; use {allowed}"
            )
        return handler, match.groupdict()
    raise ApiError(404, "not_found", f"no route {path}; see /api/openapi.json")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def api_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].replace("lifespan.", "")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    try:
        handler, params = _route(scope["method"], scope["path"].rstrip("/") or "/")
        body = await _read_body(receive)
        status, payload = await asyncio.to_thread(_call, handler, Request(params, body))
    except ApiError as error:
        status, payload = error.status, _error(error.status, error.code, error.message)
    except SettingsError as error:
        status, payload = 503, _error(503, "not_configured", str(error))
    except Exception:
        logger.exception("API request failed: %s %s", scope["method"], scope["path"])
        status, payload = 500, _error(500, "internal_error", "the request failed; see the logs")
    await _respond(send, status, payload)


def _call(handler: Handler, request: Request) -> tuple[int, Any]:
    return handler(get_services(), request)


def require_key(app: ASGIApp, key: str) -> ASGIApp:
    """What Azure's function keys do, for the local host: `x-functions-key` or `?code=`."""
    expected = key.encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"x-functions-key", b"")
            if not given:
                query = dict(
                    part.split(b"=", 1)
                    for part in scope.get("query_string", b"").split(b"&")
                    if b"=" in part
                )
                given = query.get(b"code", b"")
            if not hmac.compare_digest(given, expected):
                await _respond(
                    send,
                    401,
                    _error(401, "unauthorized", "missing or wrong x-functions-key header"),
                )
                return
        await app(scope, receive, send)

    return guarded
