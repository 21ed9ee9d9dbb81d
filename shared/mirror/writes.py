"""Writing many entities: grouped by partition into entity-group transactions."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypeVar

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import (
    TableClient,
    TableErrorCode,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from shared.mapping import utf16_units
from shared.mirror.transactions import submit_transaction

# An entity-group transaction holds at most 100 entities of one partition and under 4 MiB.
MAX_TRANSACTION_ENTITIES = 100
MAX_TRANSACTION_BYTES = 3_500_000
# Transactions of different partitions are independent, so a few go out at once.
PARALLEL_TRANSACTIONS = 4
# Up to this many entities of one partition are written one by one rather than in a
# transaction (measured on azure-data-tables 12.7: a transaction of 3 costs 1.4 ms of CPU per
# entity, a single upsert 0.9 ms; from 6 on the transaction is cheaper).
SINGLES_UP_TO = 3

T = TypeVar("T")
R = TypeVar("R")
# One pool per process: starting threads for every call cost more than the calls they ran.
# Only leaf calls (one request each) run on it, so nothing waits on the pool from inside it;
# each caller keeps its own `width` in flight, so concurrent callers do not starve each other.
IO_THREADS = 32
_pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="acctsync-io")


def run_parallel(
    call: Callable[[T], R], items: list[T], *, width: int = PARALLEL_TRANSACTIONS
) -> list[R]:
    """`call` on every item, at most `width` at once; every call finishes before the first
    error (if any) is raised; results in order."""
    if len(items) == 1:
        return [call(items[0])]
    slots = threading.Semaphore(width)

    def guarded(item: T) -> R:
        try:
            return call(item)
        finally:
            slots.release()

    futures = []
    for item in items:
        slots.acquire()
        futures.append(_pool.submit(guarded, item))
    wait(futures)
    return [future.result() for future in futures]


def upsert_all(table: TableClient, entities: Iterable[Mapping[str, Any]]) -> int:
    """Upsert (replace) every entity, batched per partition; returns the number of requests."""
    chunks = _partition_chunks(entities)
    upsert_chunks(table, chunks)
    return len(chunks)


def upsert_chunks(table: TableClient, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> None:
    """Upsert (replace) chunks of one partition each (a transaction per chunk, side by side)."""
    _write_chunks(table, chunks, TransactionOperation.UPSERT, UpdateMode.REPLACE)


def merge_all(table: TableClient, entities: Iterable[Mapping[str, Any]]) -> None:
    """Merge the given properties into existing entities, batched per partition."""
    _write_chunks(table, _partition_chunks(entities), TransactionOperation.UPDATE, UpdateMode.MERGE)


def _write_chunks(
    table: TableClient,
    chunks: Sequence[Sequence[Mapping[str, Any]]],
    operation: TransactionOperation,
    mode: UpdateMode,
) -> None:
    """Write chunks of one partition each, side by side: a chunk of one entity alone, a
    longer one as a transaction. UPSERT writes a row whether or not it exists; UPDATE only
    one that does."""

    def submit(chunk: Sequence[Mapping[str, Any]]) -> None:
        if len(chunk) > 1:
            submit_transaction(table, [(operation, entity, {"mode": mode}) for entity in chunk])
        elif operation is TransactionOperation.UPSERT:
            table.upsert_entity(chunk[0], mode=mode)
        else:
            table.update_entity(chunk[0], mode=mode)

    if chunks:
        run_parallel(submit, list(chunks))


def create_all(
    table: TableClient, entities: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Insert every entity, batched per partition; returns the entities not written because
    their request met a row that already exists (a transaction writes all or nothing)."""

    def submit(chunk: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        try:
            if len(chunk) == 1:
                table.create_entity(chunk[0])
            else:
                submit_transaction(table, [(TransactionOperation.CREATE, e) for e in chunk])
        except ResourceExistsError:
            return chunk
        except TableTransactionError as error:
            if getattr(error, "error_code", None) != TableErrorCode.ENTITY_ALREADY_EXISTS:
                raise
            return chunk
        return []

    chunks = _partition_chunks(entities)
    return (
        [entity for failed in run_parallel(submit, chunks) for entity in failed] if chunks else []
    )


def delete_all(table: TableClient, rows: Iterable[Mapping[str, Any]]) -> int:
    """Delete rows by their keys, in the order given, 100 of one partition to a transaction;
    returns how many were deleted."""
    removed = 0
    chunk: list[tuple[TransactionOperation, dict[str, Any]]] = []
    for row in rows:
        keys = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
        if chunk and (
            len(chunk) == MAX_TRANSACTION_ENTITIES
            or chunk[0][1]["PartitionKey"] != keys["PartitionKey"]
        ):
            table.submit_transaction(chunk)
            removed, chunk = removed + len(chunk), []
        chunk.append((TransactionOperation.DELETE, keys))
    if chunk:
        table.submit_transaction(chunk)
        removed += len(chunk)
    return removed


def _partition_chunks(entities: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Entities grouped by partition into the requests that write them."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entity in entities:
        groups[str(entity["PartitionKey"])].append(entity)
    chunks: list[list[Mapping[str, Any]]] = []
    for group in groups.values():
        if len(group) <= SINGLES_UP_TO:
            # The transaction envelope costs about three single writes of client CPU, so a
            # partition with this few entities gets the same writes one by one (each one
            # atomic; a batch that fails half-way is redelivered and its writes repeated).
            chunks.extend([entity] for entity in group)
        else:
            chunks.extend(_chunks(group))
    return chunks


def _chunks(entities: list[Mapping[str, Any]]) -> Iterable[list[Mapping[str, Any]]]:
    chunk: list[Mapping[str, Any]] = []
    size = 0
    for entity in entities:
        entity_size = _approximate_size(entity)
        if chunk and (
            len(chunk) == MAX_TRANSACTION_ENTITIES or size + entity_size > MAX_TRANSACTION_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(entity)
        size += entity_size
    if chunk:
        yield chunk


def _approximate_size(entity: Mapping[str, Any]) -> int:
    # Text counts as UTF-16, as the service counts it; other values by their text form.
    return sum(2 * (len(str(k)) + utf16_units(str(v))) for k, v in entity.items()) + 200
