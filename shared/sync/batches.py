"""Queue messages: account and contact batches, re-load sweeps, and claim checks.

A batch carries the raw Web API values of the changed rows, so applying it needs no call to
Dynamics. While a page's changes stream in, each batch holds rows of one mirror partition only,
so the apply step writes it as whole entity-group transactions (100 rows a request) instead of
a request per row; what is left of each partition at the end of the page is packed together.
A record too large for a queue message travels alone in a blob; its message holds the blob's
name (the claim check pattern). Sizes are counted in UTF-8 bytes, as the queue counts them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from shared.errors import AcctsyncError
from shared.ids import parse_guid, parse_version
from shared.mapping import ColumnType
from shared.mirror.search import TERM_CHARS, SearchKind
from shared.state.schedule import LoadMode
from shared.times import iso_precise, parse_iso

# A queue message holds 64 KiB after base64, so at most 48 KiB of JSON; keep a margin.
MAX_MESSAGE_BYTES = 46_000
# 2 added memberships to batches, 3 re-load generations, sweeps and claim checks. A worker
# refuses a newer message (it goes to poison, to be replayed once the worker is upgraded)
# rather than apply part of it: a version-2 worker would not stamp a re-load's rows, and the
# sweep would then flag them as deleted. 4 added accounts the sync filter keeps out (a version-3
# worker would blank them) and re-sync batches. 5 added the values' labels (`fmt`), which a
# version-4 worker would drop. 6 added a first load's search-index entries sent apart
# (`search`), which a version-5 worker would not write. Older messages mean the same to this
# version (without labels, with the index written beside the rows).
FORMAT_VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
_KEY_TEXT = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_BLOB_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}/[A-Za-z0-9_.:-]{1,100}\.json")


class BadBatch(AcctsyncError, ValueError):
    """A queue message that is not a batch this version can apply."""


@dataclass(frozen=True)
class AccountChange:
    id: str
    version: int | None = None
    modified_on: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    # The sync filter's explicit No: not mirrored, or no longer synced (no values carried).
    filtered: bool = False
    # Column -> its value as Dynamics formats it, where that says more (mapping.label_of).
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactChange:
    id: str
    version: int | None = None
    parent_id: str | None = None
    parent_type: str | None = None
    modified_on: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    cycle_id: str
    batch_id: str
    mode: LoadMode
    columns: dict[str, ColumnType]
    accounts: list[AccountChange] = field(default_factory=list)
    contacts: list[ContactChange] = field(default_factory=list)
    traceparent: str | None = None
    # Newly selected columns: loaded for every account without activities.
    backfill: list[str] = field(default_factory=list)
    # (account id, contact id) pairs to add to the account memberships.
    members: list[tuple[str, str]] = field(default_factory=list)
    # The cycle sends the memberships of this batch's contacts whose parent is known to be an
    # account in batches of their own, grouped by membership partition (a first load), so
    # applying this batch writes none of those.
    members_apart: bool = False
    # (kind, normalized term, record id) search-index entries to write (shared.mirror.search).
    search: list[tuple[SearchKind, str, str]] = field(default_factory=list)
    # The same for the search index (a first load): this batch's rows are indexed by others.
    search_apart: bool = False
    # A re-load stamps every row it carries with its generation (shared/sync/apply/sweep.py).
    generation: int = 0
    # The re-sync (shared/sync/resync_requests.py) whose rows these are: only `columns` are written.
    resync: str = ""
    # No later than its changes were read from Dynamics: a change read before its record was
    # flagged deleted does not bring the record back (a replayed batch, older than the
    # deletion); one read after the flag shows Dynamics has the record (a wrong flag).
    read_at: datetime | None = None

    def encode(self) -> str:
        return encode_batch(
            self,
            accounts=[account_fragment(a) for a in self.accounts],
            contacts=[contact_fragment(c) for c in self.contacts],
            members=[member_fragment(a, c) for a, c in self.members],
            search=[search_fragment(*entry) for entry in self.search],
        )

    @classmethod
    def decode(cls, text: str | bytes) -> Batch:
        message = decode_message(text)
        if not isinstance(message, Batch):
            raise BadBatch("the message is not a batch of changes")
        return message


@dataclass(frozen=True)
class SweepBatch:
    """After a table's full re-load: flag the rows of one partition that the re-load did not
    see (a generation older than its own) as deleted."""

    cycle_id: str
    batch_id: str
    entity_set: str
    partition: str
    generation: int
    traceparent: str | None = None

    def encode(self) -> str:
        return _compact(
            {
                **_head(self.cycle_id, self.batch_id),
                "traceparent": self.traceparent,
                "sweep": {
                    "table": self.entity_set,
                    "partition": self.partition,
                    "generation": self.generation,
                },
            }
        )


@dataclass(frozen=True)
class ClaimCheck:
    """A batch too large for a queue message: the message names the blob that holds it."""

    cycle_id: str
    batch_id: str
    blob: str

    def encode(self) -> str:
        return _compact({**_head(self.cycle_id, self.batch_id), "claim": self.blob})


Message = Batch | SweepBatch | ClaimCheck


def decode_message(text: str | bytes) -> Message:
    """A queue message as what it is; BadBatch for anything this version cannot apply."""
    try:
        data = _readable(orjson.loads(text))
        cycle_id, batch_id = _key_text(data["cycle"]), _key_text(data["batch"])
        if "claim" in data:
            return _claim_of(data["claim"], cycle_id, batch_id)
        traceparent = _optional_text(data.get("traceparent"))
        if "sweep" in data:
            return _sweep_of(data["sweep"], cycle_id, batch_id, traceparent)
        return _batch_of(data, cycle_id, batch_id, traceparent)
    except BadBatch:
        raise
    # OverflowError: int(Infinity); RecursionError: JSON nested thousands deep. Whatever
    # the message holds, the caller gets BadBatch and the message goes to poison.
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as error:
        raise BadBatch(f"not a readable batch: {type(error).__name__}: {error}") from None


def _readable(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("v") not in READABLE_VERSIONS:
        version = data.get("v") if isinstance(data, dict) else None
        raise BadBatch(f"batch format {version!r} is not one of {READABLE_VERSIONS}")
    return data


def _claim_of(blob: Any, cycle_id: str, batch_id: str) -> ClaimCheck:
    if not isinstance(blob, str) or not _BLOB_NAME.fullmatch(blob):
        raise BadBatch(f"claim check {str(blob)[:60]!r} is not a batch blob name")
    return ClaimCheck(cycle_id, batch_id, blob)


def _sweep_of(sweep: Any, cycle_id: str, batch_id: str, traceparent: str | None) -> SweepBatch:
    table = sweep["table"]
    if table not in ("accounts", "contacts"):
        raise BadBatch(f"sweep of unknown table {table!r}")
    return SweepBatch(
        cycle_id,
        batch_id,
        table,
        _partition(sweep["partition"]),
        parse_version(sweep["generation"]),
        traceparent,
    )


def _batch_of(data: dict[str, Any], cycle_id: str, batch_id: str, traceparent: str | None) -> Batch:
    return Batch(
        cycle_id=cycle_id,
        batch_id=batch_id,
        mode=LoadMode(data["mode"]),
        columns={_column(k): ColumnType(v) for k, v in data["columns"].items()},
        accounts=[_account_of(a) for a in data["accounts"]],
        contacts=[_contact_of(c) for c in data["contacts"]],
        traceparent=traceparent,
        backfill=[str(c) for c in data.get("backfill", [])],
        members=[_member_of(m) for m in data.get("members", [])],
        members_apart=data.get("members_apart") is True,
        search=[_search_of(s) for s in data.get("search", [])],
        search_apart=data.get("search_apart") is True,
        generation=parse_version(data.get("gen", 0)),
        resync=_key_text(data["resync"]) if data.get("resync") else "",
        read_at=parse_iso(data["read"]) if data.get("read") else None,
    )


def message_key(text: str | bytes) -> tuple[str, str]:
    """(cycle id, batch id) of a queue message, without decoding its changes; ("", "") for a
    message that does not say (status names held batches by it)."""
    try:
        data = orjson.loads(text)
        return _key_text(data["cycle"]), _key_text(data["batch"])
    except (ValueError, KeyError, TypeError, BadBatch):
        return "", ""


def encode_batch(
    header: Batch,
    *,
    accounts: list[str],
    contacts: list[str],
    members: list[str],
    search: list[str] | None = None,
) -> str:
    """The message of a batch: `header`'s own fields, and the changes as encoded fragments."""
    head = {
        **_head(header.cycle_id, header.batch_id),
        "mode": header.mode,
        "columns": {name: kind.value for name, kind in header.columns.items()},
        "traceparent": header.traceparent,
        "backfill": header.backfill,
    }
    if header.members_apart:
        head["members_apart"] = True
    if header.search_apart:
        head["search_apart"] = True
    if header.generation:
        head["gen"] = header.generation
    if header.resync:
        head["resync"] = header.resync
    if header.read_at is not None:
        head["read"] = iso_precise(header.read_at)
    # Only a first load's batches carry search entries: no key for them in any other.
    indexed = f',"search":[{",".join(search)}]' if search else ""
    return (
        f"{_compact(head)[:-1]},"
        f'"accounts":[{",".join(accounts)}],'
        f'"contacts":[{",".join(contacts)}],'
        f'"members":[{",".join(members)}]{indexed}}}'
    )


def _head(cycle_id: str, batch_id: str) -> dict[str, Any]:
    # Every message opens so: its format and its key (message_key reads only these).
    return {"v": FORMAT_VERSION, "cycle": cycle_id, "batch": batch_id}


def account_fragment(change: AccountChange) -> str:
    return _compact(_account_json(change))


def contact_fragment(change: ContactChange) -> str:
    return _compact(_contact_json(change))


def member_fragment(account_id: str, contact_id: str) -> str:
    return _compact([account_id, contact_id])


def search_fragment(kind: SearchKind, term: str, record_id: str) -> str:
    return _compact([kind.value, term, record_id])


def _compact(value: Any) -> str:
    # Text as UTF-8, not \\u escapes: a CJK character costs 3 bytes instead of 6.
    return orjson.dumps(value).decode("utf-8")


def byte_size(text: str) -> int:
    """Bytes of text as the queue counts them (UTF-8, before base64)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _account_json(change: AccountChange) -> dict[str, Any]:
    if change.deleted:
        return {"id": change.id, "deleted": True}
    if change.filtered:
        return {"id": change.id, "ver": change.version, "mod": change.modified_on, "out": True}
    return _with_labels(
        {"id": change.id, "ver": change.version, "mod": change.modified_on, "f": change.values},
        change.labels,
    )


def _contact_json(change: ContactChange) -> dict[str, Any]:
    if change.deleted:
        return {"id": change.id, "deleted": True}
    data = {
        "id": change.id,
        "ver": change.version,
        "parent": change.parent_id,
        "ptype": change.parent_type,
        "mod": change.modified_on,
        "f": change.values,
    }
    return _with_labels(data, change.labels)


def _with_labels(data: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    # Most values have no label worth carrying: no key then, not an empty one per change.
    return {**data, "fmt": labels} if labels else data


def _account_of(data: dict[str, Any]) -> AccountChange:
    if data.get("deleted"):
        return AccountChange(id=parse_guid(data["id"]), deleted=True)
    filtered = data.get("out") is True
    return AccountChange(
        id=parse_guid(data["id"]),
        version=parse_version(data["ver"]),
        modified_on=_optional_text(data.get("mod")),
        values={} if filtered else _values(data["f"]),
        filtered=filtered,
        labels=_labels(data.get("fmt", {})),
    )


def _member_of(data: Any) -> tuple[str, str]:
    account_id, contact_id = data
    return parse_guid(account_id), parse_guid(contact_id)


def _search_of(data: Any) -> tuple[SearchKind, str, str]:
    kind, term, record_id = data
    if not isinstance(term, str) or not 0 < len(term) <= TERM_CHARS:
        raise ValueError("a search entry's term is not a text of a key's length")
    return SearchKind(kind), term, parse_guid(record_id)


def _contact_of(data: dict[str, Any]) -> ContactChange:
    if data.get("deleted"):
        return ContactChange(id=parse_guid(data["id"]), deleted=True)
    parent = data.get("parent")
    return ContactChange(
        id=parse_guid(data["id"]),
        version=parse_version(data["ver"]),
        parent_id=None if parent is None else parse_guid(parent),
        parent_type=_optional_text(data.get("ptype")),
        modified_on=_optional_text(data.get("mod")),
        values=_values(data["f"]),
        labels=_labels(data.get("fmt", {})),
    )


# Ids become table keys and versions order changes: a message is checked before either is
# used, so a forged or corrupted batch fails as a whole (and goes to poison) instead.
def _key_text(value: Any) -> str:
    # Cycle and batch ids end up in table keys, which refuse slashes, # ? and control characters.
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not an id")
    text = str(value)
    if not _KEY_TEXT.fullmatch(text):
        raise ValueError(f"{text[:60]!r} is not an id")
    return text


def _column(name: str) -> str:
    # Column names become property names (f_<name>): logical names only.
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"{name[:60]!r} is not a column name")
    return name


def _partition(value: Any) -> str:
    if not isinstance(value, str) or not (len(value) == 2 and value.isdigit()):
        raise ValueError(f"{str(value)[:20]!r} is not a mirror partition")
    return value


def _optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def _values(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("the field values are not an object")
    return {str(k): v for k, v in value.items()}


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("the labels are not an object of texts")
    return {_column(k): v for k, v in value.items()}


Kind = Literal["accounts", "contacts", "members", "search"]


@dataclass
class Packed:
    """The encoded changes of one batch, waiting for its header."""

    accounts: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def records(self) -> int:
        return len(self.accounts) + len(self.contacts)

    def add(self, kind: Kind, fragment: str, size: int) -> None:
        getattr(self, kind).append(fragment)
        self.size += size + 1  # and its comma


class BatchPacker:
    """Encoded changes into batches of at most `budget` bytes of changes: one (kind, partition)
    per batch while they stream in, the remainders of all of them packed together at the end.

    It holds at most one unfinished batch per kind and partition, however long the stream.
    """

    def __init__(self, budget: int):
        self.budget = budget
        self._open: dict[tuple[Kind, str], Packed] = {}

    def fits(self, fragment: str) -> bool:
        return byte_size(fragment) + 1 <= self.budget

    def add(self, kind: Kind, partition: str, fragment: str) -> Packed | None:
        """Add a change that fits; returns the partition's batch when this one filled it."""
        key = (kind, partition)
        size = byte_size(fragment)
        current = self._open.setdefault(key, Packed())
        full = None
        if current.size + size + 1 > self.budget:
            full, current = current, Packed()
            self._open[key] = current
        current.add(kind, fragment, size)
        return full

    def flush(self) -> Iterator[Packed]:
        """What is left, in partition order, packed together."""
        current = Packed()
        for (kind, _), pending in sorted(self._open.items()):
            for fragment in getattr(pending, kind):
                size = byte_size(fragment)
                if current.size + size + 1 > self.budget:
                    yield current
                    current = Packed()
                current.add(kind, fragment, size)
        self._open.clear()
        if current.size:
            yield current


def header_budget(header: Batch, max_bytes: int = MAX_MESSAGE_BYTES) -> int:
    """How many bytes of changes a batch with this header can carry in one queue message."""
    # With the key of search entries, which only a batch carrying some has.
    empty = encode_batch(header, accounts=[], contacts=[], members=[], search=[""])
    return max_bytes - byte_size(empty) - 16  # a margin for a longer batch number
