"""Count what a process sends to storage: one wrapper around azure-core's requests transport.

Every HTTP request any table or queue client of the process sends passes through
`RequestsTransport.send`, retries included, so the count is what Azurite (or Azure) receives.
An entity-group transaction is one request (one storage transaction); its operations are
counted apart as entities written.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline.transport import RequestsTransport


@dataclass
class StorageOps:
    table_reads: int = 0  # point reads and query pages
    table_writes: int = 0  # single-entity inserts, updates, upserts and deletes
    table_transactions: int = 0  # entity-group transactions ($batch)
    entities_in_transactions: int = 0
    queue_ops: int = 0  # send, receive, delete, update, properties
    other: int = 0  # table and queue creation and listing

    @property
    def total(self) -> int:
        return (
            self.table_reads
            + self.table_writes
            + self.table_transactions
            + self.queue_ops
            + self.other
        )

    @property
    def entities_written(self) -> int:
        return self.table_writes + self.entities_in_transactions

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total, "entities_written": self.entities_written}


_lock = threading.Lock()
_ops = StorageOps()
_installed = False


def install(table_port: int, queue_port: int) -> None:
    """Count every request this process sends to the given table and queue ports."""
    global _installed
    if _installed:
        return
    original = RequestsTransport.send

    def send(self: RequestsTransport, request: Any, **kwargs: Any) -> Any:
        _count(request, table_port, queue_port)
        return original(self, request, **kwargs)

    RequestsTransport.send = send
    _installed = True


def _count(request: Any, table_port: int, queue_port: int) -> None:
    parts = urlsplit(str(request.url))
    method = str(request.method).upper()
    path = parts.path.rstrip("/")
    with _lock:
        if parts.port == queue_port:
            if path.count("/") >= 2:  # /account/queue[/messages...]
                _ops.queue_ops += 1
            else:
                _ops.other += 1
        elif parts.port == table_port:
            if path.endswith("$batch"):
                body = request.data if isinstance(request.data, bytes) else b""
                _ops.table_transactions += 1
                _ops.entities_in_transactions += body.count(b"application/http")
            elif path.endswith("/Tables") or "/Tables(" in path:
                _ops.other += 1
            elif method == "GET":
                _ops.table_reads += 1
            else:
                _ops.table_writes += 1
        else:
            _ops.other += 1


def snapshot() -> StorageOps:
    with _lock:
        return StorageOps(**asdict(_ops))


def reset() -> None:
    global _ops
    with _lock:
        _ops = StorageOps()
