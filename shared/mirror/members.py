"""Which live contacts belong to which account: PartitionKey bucket(account), RowKey
account|contact. An account's members are one key range of one partition, so the threshold rule
reads only as many keys as it needs, and a first load writes memberships 100 to a transaction.

A contact that leaves an account (deleted, or moved to another) leaves a *former* marker under
the same keys in the feed table's `former|<bucket>` partition, written before the membership
goes: a walk of an account's contacts with the deleted ones reads both ranges side by side, and
at every moment a contact is in at least one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from azure.core.paging import ItemPaged
from azure.data.tables import TableClient, TableEntity

from shared.mirror.records import bucket
from shared.mirror.service_pages import service_page
from shared.mirror.writes import upsert_all


@dataclass(frozen=True)
class Members:
    """The first `kept` contact ids of an account, and how many live contacts it has."""

    first: list[str]
    count: int


class Memberships:
    def __init__(self, table: TableClient, *, former: TableClient):
        self.table = table
        self.former = former

    def add_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        upsert_all(
            self.table,
            (
                {"PartitionKey": bucket(account), "RowKey": f"{account}|{contact}"}
                for account, contact in pairs
            ),
        )

    def remove(self, account_id: str, contact_id: str) -> None:
        key = f"{account_id}|{contact_id}"
        self.former.upsert_entity({"PartitionKey": FORMER + bucket(account_id), "RowKey": key})
        # No error when already gone.
        self.table.delete_entity(bucket(account_id), key)

    def after(
        self, account_id: str, contact_id: str, limit: int, *, former: bool = False
    ) -> tuple[list[str], bool]:
        """Up to `limit` contact ids of the account after `contact_id` in id order (members,
        or former members), and whether there are more."""
        table, partition = self.table, bucket(account_id)
        if former:
            table, partition = self.former, FORMER + partition
        query = table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={
                "pk": partition,
                "low": f"{account_id}|{contact_id}",
                "high": account_id + "}",
            },
            select=["RowKey"],
            results_per_page=limit,
        )
        found: list[str] = []
        continuation = None
        while len(found) < limit:
            page, continuation = service_page(query.by_page(continuation_token=continuation))
            found.extend(_member(entity) for entity in page)
            if not continuation:
                break
        return found[:limit], bool(continuation) or len(found) > limit

    def first(self, account_id: str, limit: int) -> list[str]:
        """Up to `limit` contact ids of the account; the service never sends more."""
        found: list[str] = []
        token = None
        while len(found) < limit:
            # Each page asks for no more than what is still missing (a page holds <= 1,000).
            query = self._query(account_id, results_per_page=min(1000, limit - len(found)))
            page, token = service_page(query.by_page(continuation_token=token))
            found.extend(_member(entity) for entity in page)
            if not token:
                break
        return found[:limit]

    def read(self, account_id: str, *, keep: int) -> Members:
        """The first `keep` contact ids and the exact count, holding no more than `keep` ids:
        one pass over the account's key range (key-only pages of 1,000)."""
        first: list[str] = []
        count = 0
        for entity in self._query(account_id, results_per_page=1000):
            count += 1
            if len(first) < keep:
                first.append(_member(entity))
        return Members(first, count)

    def count(self, account_id: str) -> int:
        return sum(1 for _ in self._query(account_id, results_per_page=1000))

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


FORMER = "former|"


def _member(entity: TableEntity) -> str:
    return str(entity["RowKey"]).partition("|")[2]
