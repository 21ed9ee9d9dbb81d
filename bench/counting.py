"""Count what a process sends to storage: one wrapper around azure-core's requests transport.

Every HTTP request any table or queue client of the process sends passes through
`RequestsTransport.send`, retries included, so the count is what Azurite (or Azure) receives.
An entity-group transaction is one request (one storage transaction); its operations are
counted apart as entities written. Entities written are also counted per table and
PartitionKey (a transaction holds one partition, so its first key names it): the busiest
partition's share is what bounds a load on Table Storage (issue 26).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from azure.core.pipeline.transport import RequestsTransport

# An entity's key as the body's JSON holds it, or (a delete has no body) as its URL does.
_BODY_KEY = re.compile(rb'"PartitionKey": *("(?:[^"\\]|\\.)*")')
_URL_KEY = re.compile(rb"\(PartitionKey='([^']*)'")
# The table of a transaction: the path of its first operation's request line.
_BATCH_TABLE = re.compile(rb"\r\n(?:POST|PUT|PATCH|MERGE|DELETE) [^ ]*?/([A-Za-z0-9]+)[( ]")


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
_partitions: Counter[tuple[str, str]] = Counter()  # (table, PartitionKey) -> entities written
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
                entities = body.count(b"application/http")
                _ops.table_transactions += 1
                _ops.entities_in_transactions += entities
                table = _BATCH_TABLE.search(body)
                name = table.group(1).decode() if table else "?"
                _partitions[name, _partition_key(body, body)] += entities
            elif path.endswith("/Tables") or "/Tables(" in path:
                _ops.other += 1
            elif method == "GET":
                _ops.table_reads += 1
            else:
                _ops.table_writes += 1
                data = request.data
                body = data.encode() if isinstance(data, str) else data or b""
                name = path.rsplit("/", 1)[-1].split("(", 1)[0]
                _partitions[name, _partition_key(body, path.encode())] += 1
        else:
            _ops.other += 1


def _partition_key(body: bytes, url: bytes) -> str:
    found = _BODY_KEY.search(body)
    if found:
        return str(json.loads(found.group(1)))
    found = _URL_KEY.search(url)
    return unquote(found.group(1).decode()).replace("''", "'") if found else "?"


def snapshot() -> StorageOps:
    with _lock:
        return StorageOps(**asdict(_ops))


def partitions() -> dict[str, dict[str, int]]:
    """Entities written so far, per table and PartitionKey."""
    found: dict[str, dict[str, int]] = {}
    with _lock:
        for (table, key), entities in _partitions.items():
            found.setdefault(table, {})[key] = entities
    return found


def reset() -> None:
    global _ops
    with _lock:
        _ops = StorageOps()
        _partitions.clear()


@dataclass(frozen=True)
class Spread:
    """How a run's writes spread over partitions: `share` is the largest share one partition
    takes of its table's writes, over the tables holding at least 1/16 of all the writes (a
    partition of a smaller table cannot hold more than 1/16 of them anyway)."""

    entities: int
    share: float
    table: str
    partition: str
    partitions: int  # in that table
    overall_share: float  # the busiest partition's share of every entity written

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def spread(*runs: Mapping[str, Mapping[str, int]]) -> Spread:
    """The spread of the writes of one or more processes (their `partitions()`)."""
    tables: dict[str, Counter[str]] = {}
    for run in runs:
        for table, keys in run.items():
            tables.setdefault(table, Counter()).update(keys)
    total = sum(sum(keys.values()) for keys in tables.values())
    overall = max((max(k.values()) for k in tables.values() if k), default=0) / max(1, total)
    worst = Spread(total, 0.0, "", "", 0, overall)
    for table, keys in tables.items():
        written = sum(keys.values())
        if not written or written * 16 < total:
            continue
        partition, entities = keys.most_common(1)[0]
        if entities / written > worst.share:
            worst = Spread(total, entities / written, table, partition, len(keys), overall)
    return worst
