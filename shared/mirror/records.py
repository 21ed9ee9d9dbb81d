"""The mirrored records, behind small repositories named after what they hold.

Table design (the README explains the reasons):
- accounts:   PartitionKey = bucket(accountid), RowKey = accountid
- contacts:   PartitionKey = bucket(contactid), RowKey = contactid
- members:    PartitionKey = bucket(accountid), RowKey = accountid|contactid  (live contacts)
- activities: PartitionKey = bucket(contactid), RowKey = contactid|inverted time|change|field
A bucket is a stable hash of the id into BUCKETS partitions, so rows of one batch share
partitions (entity-group transactions) without one hot partition. An account's members are one
key range of one partition: counting them stops after what the threshold rule needs, and the
memberships of a first load are written 100 to a transaction like every other table.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.mapping import FIELD_PREFIX, to_json
from shared.mirror.writes import run_parallel, upsert_all

BUCKETS = 64
PARALLEL_READS = 8
# Activity keys sort newest first: RowKey carries the time inverted against this bound.
_TIME_BOUND_MS = 10**13 - 1


def bucket(record_id: str) -> str:
    """The partition of a record: stable across processes and versions (never change BUCKETS)."""
    return f"{zlib.crc32(record_id.encode()) % BUCKETS:02d}"


def fields_of(entity: TableEntity | dict[str, Any]) -> dict[str, Any]:
    """The mirrored columns of an entity as Web API JSON values."""
    return {
        name[len(FIELD_PREFIX) :]: to_json(value)
        for name, value in entity.items()
        if name.startswith(FIELD_PREFIX)
    }


def _read_many(table: TableClient, ids: Iterable[str]) -> dict[str, TableEntity]:
    def read(record_id: str) -> tuple[str, TableEntity | None]:
        try:
            return record_id, table.get_entity(bucket(record_id), record_id)
        except ResourceNotFoundError:
            return record_id, None

    unique = list(dict.fromkeys(ids))
    if not unique:
        return {}
    found = run_parallel(read, unique, width=PARALLEL_READS)
    return {rid: entity for rid, entity in found if entity is not None}


class _Records:
    """Mirrored rows of one table, keyed bucket(id) / id."""

    def __init__(self, table: TableClient):
        self.table = table

    def get(self, record_id: str) -> TableEntity | None:
        try:
            return self.table.get_entity(bucket(record_id), record_id)
        except ResourceNotFoundError:
            return None

    def get_many(self, ids: Iterable[str]) -> dict[str, TableEntity]:
        return _read_many(self.table, ids)

    def ids(self) -> Iterator[str]:
        """Every mirrored id that is not flagged deleted (a full scan: reloads only)."""
        for entity in self.table.list_entities(select=["RowKey", "is_deleted"]):
            if not entity.get("is_deleted"):
                yield str(entity["RowKey"])


class AccountMirror(_Records):
    """Mirrored accounts: written only by the apply step, and by local edits under ETags."""


class ContactMirror(_Records):
    def upsert_all(self, entities: Iterable[dict[str, Any]]) -> int:
        return upsert_all(self.table, entities)


class Memberships:
    """Which live contacts belong to which account: one key range per account."""

    def __init__(self, table: TableClient):
        self.table = table

    def add_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        upsert_all(
            self.table,
            (
                {"PartitionKey": bucket(account), "RowKey": f"{account}|{contact}"}
                for account, contact in pairs
            ),
        )

    def remove(self, account_id: str, contact_id: str) -> None:
        # No error when already gone.
        self.table.delete_entity(bucket(account_id), f"{account_id}|{contact_id}")

    def first(self, account_id: str, limit: int) -> list[str]:
        """Up to `limit` contact ids of the account; the service never returns more."""
        found: list[str] = []
        token = None
        while len(found) < limit:
            # Each page asks for no more than what is still missing (a page holds <= 1,000).
            pages = self._query(account_id, results_per_page=min(1000, limit - len(found))).by_page(
                continuation_token=token
            )
            page = next(pages, None)
            if page is None:
                break
            found.extend(_member(entity) for entity in page)
            token = getattr(pages, "continuation_token", None)  # typed as a plain Iterator
            if not token:
                break
        return found[:limit]

    def count(self, account_id: str) -> int:
        return sum(1 for _ in self._query(account_id))

    def all(self) -> Iterator[tuple[str, str]]:
        """Every (account id, contact id) pair: a full scan, for checks and tests."""
        for entity in self.table.list_entities(select=["RowKey"]):
            account_id, _, contact_id = str(entity["RowKey"]).partition("|")
            yield account_id, contact_id

    def _query(
        self, account_id: str, *, results_per_page: int | None = None
    ) -> ItemPaged[TableEntity]:
        # '}' follows '|' in key order: the range holds exactly the account's "<id>|..." keys.
        return self.table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={
                "pk": bucket(account_id),
                "low": account_id + "|",
                "high": account_id + "}",
            },
            select=["RowKey"],
            results_per_page=results_per_page,
        )


def _member(entity: TableEntity) -> str:
    return str(entity["RowKey"]).partition("|")[2]


@dataclass(frozen=True)
class Activity:
    """One Change Data Value activity on one contact."""

    contact_id: str
    account_id: str
    field: str
    old: Any
    new: Any
    reason: str
    source: str
    at: datetime
    change_key: str  # the same change always has the same key: redelivery cannot log twice

    def entity(self) -> dict[str, Any]:
        inverted = _TIME_BOUND_MS - int(self.at.timestamp() * 1000)
        return {
            "PartitionKey": bucket(self.contact_id),
            "RowKey": f"{self.contact_id}|{inverted:013d}|{self.change_key}|{self.field}",
            "type": "Change Data Value",
            "accountid": self.account_id,
            "field": self.field,
            "old": json.dumps(self.old),
            "new": json.dumps(self.new),
            "reason": self.reason,
            "source": self.source,
            "at": self.at,
        }


class ActivityLog:
    def __init__(self, table: TableClient):
        self.table = table

    def write(self, activities: Iterable[Activity]) -> int:
        entities = [a.entity() for a in activities]
        upsert_all(self.table, entities)
        return len(entities)

    def for_contact(self, contact_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
        """A contact's activities, newest first, from its own key range only."""
        pages = self.table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={
                "pk": bucket(contact_id),
                "low": contact_id + "|",
                "high": contact_id + "}",
            },
            results_per_page=min(limit, 1000),
        )
        result: list[dict[str, Any]] = []
        for entity in pages:
            if len(result) >= limit:
                break
            at = entity["at"]
            result.append(
                {
                    "type": entity["type"],
                    "field": entity["field"],
                    "old": json.loads(entity["old"]),
                    "new": json.loads(entity["new"]),
                    "reason": entity["reason"],
                    "source": entity["source"],
                    "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "accountid": entity["accountid"],
                }
            )
        return result


def replace(table: TableClient, entity: dict[str, Any], *, etag: str) -> None:
    """Replace an entity only if nobody changed it since it was read (ResourceModifiedError)."""
    table.update_entity(
        entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
    )
