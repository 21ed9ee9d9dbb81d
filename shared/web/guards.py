"""ASGI guards in front of the API: the body size limit, and the local host's key check
(what Azure's function keys do there)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
# Readable without a key: the description of the API, never its data.
OPEN_PATHS = frozenset({"/api/docs", "/api/openapi.json", "/api/docs/oauth2-redirect"})


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def limit_body(app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> ASGIApp:
    """Read a request body whole before the app does, refusing one over `max_bytes` (413)."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > max_bytes:
                await _error(send, 413, "body_too_large", f"the body is over {max_bytes} bytes")
                return
            if not message.get("more_body"):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await app(scope, replay, send)

    return guarded


def require_key(app: ASGIApp, key: str, *, prefix: str = "/") -> ASGIApp:
    """`x-functions-key` or `?code=` on every path under `prefix` but the open ones."""
    expected = key.encode()

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and path.startswith(prefix) and path not in OPEN_PATHS:
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
                await _error(send, 401, "unauthorized", "missing or wrong x-functions-key header")
                return
        await app(scope, receive, send)

    return guarded
