"""Mirrored accounts and contacts: one row per record, keyed bucket(id) / id.

A bucket is a stable hash of the id into BUCKETS partitions, so the rows of one batch share
partitions (entity-group transactions) without one hot partition. The README's table design
says why each key is what it is.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.mapping import columns_of, labels_of, to_json
from shared.mirror.writes import run_parallel, upsert_all
from shared.storage import TableRepository, entity_or_none

BUCKETS = 64
PARALLEL_READS = 8


def bucket(record_id: str) -> str:
    """The partition of a record: stable across processes and versions (never change BUCKETS)."""
    return f"{zlib.crc32(record_id.encode()) % BUCKETS:02d}"


def all_buckets() -> list[str]:
    return [f"{number:02d}" for number in range(BUCKETS)]


def fields_of(entity: TableEntity | dict[str, Any]) -> dict[str, Any]:
    """The mirrored columns of an entity as Web API JSON values."""
    return {name: to_json(value) for name, value in columns_of(entity).items()}


def labels_shown(entity: TableEntity | dict[str, Any], fields: dict[str, Any]) -> dict[str, str]:
    """The labels of the fields shown (`fields_of`, or the selected ones of it)."""
    return {column: label for column, label in labels_of(entity).items() if column in fields}


class MirroredRecords(TableRepository):
    """Mirrored rows of one table."""

    def get(self, record_id: str) -> TableEntity | None:
        return entity_or_none(self.table, bucket(record_id), record_id)

    def get_many(self, ids: Iterable[str]) -> dict[str, TableEntity]:
        def read(record_id: str) -> tuple[str, TableEntity | None]:
            return record_id, self.get(record_id)

        unique = list(dict.fromkeys(ids))
        if not unique:
            return {}
        found = run_parallel(read, unique, width=PARALLEL_READS)
        return {rid: entity for rid, entity in found if entity is not None}

    def upsert_all(self, entities: Iterable[dict[str, Any]]) -> int:
        return upsert_all(self.table, entities)

    def in_partition(self, partition: str, *, select: list[str]) -> Iterator[TableEntity]:
        """Every row of one partition, a page at a time (a re-load's sweep)."""
        return iter(
            self.table.query_entities(
                "PartitionKey eq @p", parameters={"p": partition}, select=select
            )
        )


class AccountMirror(MirroredRecords):
    """Mirrored accounts: written by the apply step, and by local edits under ETags."""


class ContactMirror(MirroredRecords):
    """Mirrored contacts, each with the account it belongs to (`accountid`, "" for none)."""


def replace(table: TableClient, entity: dict[str, Any], *, etag: str) -> str:
    """Replace an entity only if nobody changed it since it was read (ResourceModifiedError);
    returns its new ETag."""
    written = table.update_entity(
        entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
    )
    return str(written["etag"])
