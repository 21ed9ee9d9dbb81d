"""Writing many entities: grouped by partition into entity-group transactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.data.tables import TableClient, TransactionOperation, UpdateMode

# An entity-group transaction holds at most 100 entities of one partition and under 4 MiB.
MAX_TRANSACTION_ENTITIES = 100
MAX_TRANSACTION_BYTES = 3_500_000
# Transactions of different partitions are independent, so a few go out at once.
PARALLEL_TRANSACTIONS = 4


def upsert_all(table: TableClient, entities: Iterable[Mapping[str, Any]]) -> int:
    """Upsert (replace) every entity, batched per partition; returns the number of transactions."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entity in entities:
        groups[str(entity["PartitionKey"])].append(entity)
    chunks = [chunk for group in groups.values() for chunk in _chunks(group)]
    if not chunks:
        return 0

    def submit(chunk: list[Mapping[str, Any]]) -> None:
        operations = [
            (TransactionOperation.UPSERT, entity, {"mode": UpdateMode.REPLACE}) for entity in chunk
        ]
        table.submit_transaction(operations)

    if len(chunks) == 1:
        submit(chunks[0])
    else:
        with ThreadPoolExecutor(min(PARALLEL_TRANSACTIONS, len(chunks))) as pool:
            list(pool.map(submit, chunks))
    return len(chunks)


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
    return sum(len(str(k)) + len(str(v)) for k, v in entity.items()) * 2 + 200
