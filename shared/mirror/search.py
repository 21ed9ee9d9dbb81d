"""The search index: accounts by name, contacts by name or email, found by what they start
with, whatever the case (`?search=` on the lists, the console's Records search).

Table Storage has no case-insensitive prefix query, so the apply step keeps one entry per
searchable value beside the row: PartitionKey `kind|shard`, RowKey `hex(term)|id`, where the
term is the value case-folded and cut to TERM_CHARS characters and the shard one of SHARDS,
from the record's id. Hex of UTF-8 keeps the terms' order and every character a key may not
hold out of the key, so a prefix is one key range in each shard, the shards' ranges merged in
key order and read in pages from where the last one stopped. Shards, not the term's first
letter, choose the partition: names are not spread evenly over letters (one partition took a
tenth of a load's index writes), ids are, so no partition takes more than about 1/SHARDS of
them (Table Storage serves one partition at about 2,000 entities/s). An entry only points:
the search reads the rows and serves one only while its current value still makes that entry
(an entry left by a rename the apply step did not see, a local edit, is dropped when met), and
a contact found by both its name and its email comes once, through its smaller key.

A first load sends the entries in batches of their own, grouped by their partition (as it does
the memberships), so they are written whole transactions of 100 at a time rather than a few
per partition beside each batch of rows; an entry may then be there before its row is, and a
search passes over it until the row comes.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity

from shared.mapping import read_column
from shared.mirror.record_walks import Position, RecordPage
from shared.mirror.records import MirroredRecords
from shared.mirror.row import is_deleted
from shared.mirror.shards import SHARDS, Merge, record_shard
from shared.mirror.stream_range import RangePager, ShardPaging, read_together
from shared.mirror.writes import run_parallel, upsert_all
from shared.storage import TableRepository

# Long enough to tell names apart, short enough for a RowKey (1 KiB) in any script.
TERM_CHARS = 64
_AFTER_ID = "}"  # sorts after the hex digits and "|": the end of a prefix's range
_PREFIX_RANGE = "PartitionKey eq @p and RowKey gt @after and RowKey lt @end"
# A row before and after a write (before: None when new, or not read).
Change = tuple[Mapping[str, Any] | None, Mapping[str, Any]]


class SearchKind(StrEnum):
    ACCOUNT = "account"
    CONTACT = "contact"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns whose values find a record of this kind."""
        return ("name",) if self is SearchKind.ACCOUNT else ("fullname", "emailaddress1")


def normalized(text: str) -> str:
    """What a value is searched as: trimmed and case-folded ("Ærø" and "ærø" are one)."""
    return text.strip().casefold()


def _hex(term: str) -> str:
    return term[:TERM_CHARS].encode().hex()


@dataclass(frozen=True)
class SearchKey:
    partition: str
    row: str

    @classmethod
    def of(cls, kind: SearchKind, term: str, record_id: str) -> SearchKey:
        return cls(shard_partition(kind, record_shard(record_id)), f"{_hex(term)}|{record_id}")

    def entity(self, record_id: str) -> dict[str, Any]:
        return {"PartitionKey": self.partition, "RowKey": self.row, "id": record_id}


def shard_partition(kind: SearchKind, shard: int) -> str:
    return f"{kind.value}|{shard:02d}"


def terms(kind: SearchKind, row: Mapping[str, Any]) -> list[str]:
    """The searchable values of a mirrored row, normalized (empty ones left out)."""
    return _terms(read_column(row, column) for column in kind.columns)


def value_terms(kind: SearchKind, values: Mapping[str, Any]) -> list[str]:
    """The searchable values of a change as the Web API sends it (text is stored as sent),
    cut to what a key holds: what a first load sends apart from the rows."""
    return [term[:TERM_CHARS] for term in _terms(values.get(c) for c in kind.columns)]


def _terms(values: Iterable[Any]) -> list[str]:
    return list(dict.fromkeys(t for v in values if isinstance(v, str) and (t := normalized(v))))


def keys_of(kind: SearchKind, row: Mapping[str, Any]) -> set[SearchKey]:
    record_id = str(row["RowKey"])
    return {SearchKey.of(kind, term, record_id) for term in terms(kind, row)}


@dataclass(frozen=True)
class Found:
    """One entry of a prefix's range, in key order."""

    key: SearchKey
    id: str


class SearchIndex(TableRepository):
    def update(self, kind: SearchKind, changes: Iterable[Change]) -> None:
        """Index rows about to be written (`(before, after)`; `before` None when the row is
        new or was not read): the new values' entries written, the old values' removed.
        Idempotent: a batch applied again writes the same entries."""
        written: list[dict[str, Any]] = []
        gone: list[SearchKey] = []
        for before, after in changes:
            now = keys_of(kind, after)
            written += [key.entity(str(after["RowKey"])) for key in now]
            if before is not None:
                gone += keys_of(kind, before) - now
        upsert_all(self.table, written)
        self.forget(gone)

    def add(self, entries: Iterable[tuple[SearchKind, str, str]]) -> None:
        """Entries (kind, term, record id) sent apart from their rows (a first load's), written
        whole transactions to a partition: the rows may come before or after them."""
        upsert_all(self.table, (SearchKey.of(k, t, i).entity(i) for k, t, i in entries))

    def forget(self, keys: Iterable[SearchKey]) -> None:
        """Drop entries whose record no longer has that value."""
        run_parallel(self._forget_one, list(keys))

    def _forget_one(self, key: SearchKey) -> None:
        with contextlib.suppress(ResourceNotFoundError):  # removed already, or never written
            self.table.delete_entity(key.partition, key.row)

    def scan(
        self, kind: SearchKind, prefix: str, *, after: str | None, limit: int
    ) -> tuple[list[Found], bool]:
        """Up to `limit` entries of the records whose value starts with `prefix` (normalized),
        after the RowKey `after`, in key order over every shard (their ranges merged as the
        feed merges an hour's shards); and whether more may follow."""
        start = _hex(prefix)
        bounds = {"after": after or start, "end": start + _AFTER_ID}
        paging = ShardPaging.for_entries(limit + 1)
        shards = [
            RangePager(self.table, _PREFIX_RANGE, {**bounds, "p": shard_partition(kind, s)}, paging)
            for s in range(SHARDS)
        ]
        merged = Merge(shards, key=lambda entry: str(entry["RowKey"]), together=read_together)
        entries = list(itertools.islice(merged, limit + 1))
        return [_found(entry) for entry in entries[:limit]], len(entries) > limit


def _found(entity: TableEntity) -> Found:
    key = SearchKey(str(entity["PartitionKey"]), str(entity["RowKey"]))
    return Found(key, str(entity["id"]))


def search_page(
    index: SearchIndex,
    kind: SearchKind,
    records: MirroredRecords,
    text: str,
    position: Position | None,
    limit: int,
    *,
    include_deleted: bool,
) -> RecordPage:
    """A page of the records whose value starts with `text`, in the order of their values.
    A page may come short (an entry served through another, stale or deleted): the walk
    goes on while the next position is not None."""
    prefix = normalized(text)
    found, more = index.scan(kind, prefix, after=(position or {}).get("after"), limit=limit)
    rows = records.get_many(f.id for f in found)
    stale: list[SearchKey] = []
    kept: list[TableEntity] = []
    for entry in found:
        row = rows.get(entry.id)
        if row is None:
            # Not written yet (a first load sends the index apart from the rows), or never (a
            # row the mirror cannot hold): passed over, kept for when the row comes.
            continue
        if entry.key not in keys_of(kind, row):
            stale.append(entry.key)  # its value changed since (a local edit, a lost delete)
            continue
        matching = _matching_keys(kind, row, prefix)
        if entry.key not in matching:
            continue  # `text` is longer than a key holds, and this value does not start so
        if entry.key != min(matching, key=lambda k: k.row):
            continue  # found by its other value too: served through the smaller key
        if include_deleted or not is_deleted(row):
            kept.append(row)
    index.forget(stale)
    return RecordPage(kept, {"after": found[-1].key.row} if more else None)


def matches(kind: SearchKind, row: Mapping[str, Any], text: str) -> bool:
    """Whether a row's value starts with `text` (an account's contacts, filtered)."""
    prefix = normalized(text)
    return any(t.startswith(prefix) for t in terms(kind, row))


def _matching_keys(kind: SearchKind, row: Mapping[str, Any], prefix: str) -> list[SearchKey]:
    record_id = str(row["RowKey"])
    return [SearchKey.of(kind, t, record_id) for t in terms(kind, row) if t.startswith(prefix)]
