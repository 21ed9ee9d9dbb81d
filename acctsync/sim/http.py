"""The thin layer between uvicorn (ASGI) and the simulator's handlers, plus the request log.

Handlers take a fully read Request and return a Response; a Response with `drop` set makes
the connection close without any answer, which is how the simulator imitates a connection
lost on the way (the client sees a protocol or read error, never an HTTP status).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPE: Final = "application/json; charset=utf-8"
_LOG_LIMIT: Final = 500_000


@dataclass
class Request:
    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    # Set by the handler once it knows who is calling; recorded in the request log.
    principal: str | None = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    drop: bool = False


def json_response(
    status: int, payload: object, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(
        status,
        orjson.dumps(payload),
        [("content-type", JSON_TYPE), *(headers or [])],
    )


Handler = Callable[[Request], Awaitable[Response]]


class RequestLog:
    """Every request the Web API and authority listeners received, oldest first."""

    def __init__(self) -> None:
        self._entries: deque[dict[str, object]] = deque(maxlen=_LOG_LIMIT)

    def add(self, entry: dict[str, object]) -> None:
        self._entries.append(entry)

    def entries(self, *, clear: bool = False) -> list[dict[str, object]]:
        entries = list(self._entries)
        if clear:
            self._entries.clear()
        return entries


async def _read_request(scope: Scope, receive: Receive) -> Request:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return Request(
        method=scope["method"],
        path=scope["path"],
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]],
        body=bytes(body),
    )


async def _drop_connection(send: Send) -> None:
    # uvicorn gives the app no handle on the socket except through the bound `send` of its
    # request cycle; aborting that transport ends the connection with no response at all.
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError("cannot drop the connection: the ASGI server hides its transport")
    transport.abort()
    # Let connection_lost run so uvicorn knows the client is gone and sends nothing.
    for _ in range(5):
        await asyncio.sleep(0)


def asgi_app(handler: Handler, *, log: RequestLog | None, listener: str) -> ASGIApp:
    """Wrap a handler as an ASGI app; every request is recorded in `log` when one is given."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.monotonic()
        received_at = datetime.now(UTC)
        request = await _read_request(scope, receive)
        response = await handler(request)
        if log is not None:
            log.add(
                {
                    "listener": listener,
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string,
                    "status": None if response.drop else response.status,
                    "dropped": response.drop,
                    "principal": request.principal,
                    "time": received_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "duration_ms": round((time.monotonic() - started) * 1000, 3),
                }
            )
        if response.drop:
            await _drop_connection(send)
            return
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        headers.append((b"content-length", str(len(response.body)).encode("ascii")))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    return app
