"""Account and contact batches: what the cycle enqueues and the apply step reads.

A batch carries the raw Web API values of the changed rows, so applying it needs no call to
Dynamics. While changes stream in, each batch holds rows of one mirror partition only, so the
apply step writes it as whole entity-group transactions (100 rows a request) instead of a
request per row; what is left of each partition at the end is packed together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.ids import parse_guid
from shared.mapping import ColumnType

# A queue message holds 64 KiB after base64, so at most 48 KiB of JSON; keep a margin.
MAX_MESSAGE_BYTES = 46_000
# 2 added memberships to batches. A worker of version 1 refuses a version-2 message (it goes
# to poison, to be replayed once the worker is upgraded) rather than drop its memberships; a
# version-1 message means the same to this version.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
_KEY_TEXT = re.compile(r"[A-Za-z0-9_.:-]{1,100}")

Mode = Literal["initial", "delta", "reload"]


class BadBatch(ValueError):
    """A queue message that is not a batch this version can apply."""


@dataclass(frozen=True)
class AccountChange:
    id: str
    version: int | None = None
    modified_on: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False


@dataclass(frozen=True)
class ContactChange:
    id: str
    version: int | None = None
    parent_id: str | None = None
    parent_type: str | None = None
    modified_on: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False


@dataclass(frozen=True)
class Batch:
    cycle_id: str
    batch_id: str
    mode: Mode
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

    def encode(self) -> str:
        return encode_batch(
            self,
            accounts=[account_fragment(a) for a in self.accounts],
            contacts=[contact_fragment(c) for c in self.contacts],
            members=[member_fragment(a, c) for a, c in self.members],
        )

    @classmethod
    def decode(cls, text: str | bytes) -> Batch:
        try:
            data = json.loads(text)
            if data.get("v") not in READABLE_VERSIONS:
                raise BadBatch(f"batch format {data.get('v')!r} is not one of {READABLE_VERSIONS}")
            mode = data["mode"]
            if mode not in ("initial", "delta", "reload"):
                raise BadBatch(f"unknown batch mode {mode!r}")
            return cls(
                cycle_id=_key_text(data["cycle"]),
                batch_id=_key_text(data["batch"]),
                mode=mode,
                columns={_column(k): ColumnType(v) for k, v in data["columns"].items()},
                accounts=[_account_of(a) for a in data["accounts"]],
                contacts=[_contact_of(c) for c in data["contacts"]],
                traceparent=_optional_text(data.get("traceparent")),
                backfill=[str(c) for c in data.get("backfill", [])],
                members=[_member_of(m) for m in data.get("members", [])],
                members_apart=data.get("members_apart") is True,
            )
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


def encode_batch(
    header: Batch, *, accounts: list[str], contacts: list[str], members: list[str]
) -> str:
    """The message of a batch: `header`'s own fields, and the changes as encoded fragments."""
    head = {
        "v": FORMAT_VERSION,
        "cycle": header.cycle_id,
        "batch": header.batch_id,
        "mode": header.mode,
        "columns": {name: kind.value for name, kind in header.columns.items()},
        "traceparent": header.traceparent,
        "backfill": header.backfill,
    }
    if header.members_apart:
        head["members_apart"] = True
    return (
        f"{_compact(head)[:-1]},"
        f'"accounts":[{",".join(accounts)}],'
        f'"contacts":[{",".join(contacts)}],'
        f'"members":[{",".join(members)}]}}'
    )


def account_fragment(change: AccountChange) -> str:
    return _compact(_account_json(change))


def contact_fragment(change: ContactChange) -> str:
    return _compact(_contact_json(change))


def member_fragment(account_id: str, contact_id: str) -> str:
    return _compact([account_id, contact_id])


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _account_json(change: AccountChange) -> dict[str, Any]:
    if change.deleted:
        return {"id": change.id, "deleted": True}
    return {"id": change.id, "ver": change.version, "mod": change.modified_on, "f": change.values}


def _contact_json(change: ContactChange) -> dict[str, Any]:
    if change.deleted:
        return {"id": change.id, "deleted": True}
    return {
        "id": change.id,
        "ver": change.version,
        "parent": change.parent_id,
        "ptype": change.parent_type,
        "mod": change.modified_on,
        "f": change.values,
    }


def _account_of(data: dict[str, Any]) -> AccountChange:
    if data.get("deleted"):
        return AccountChange(id=parse_guid(data["id"]), deleted=True)
    return AccountChange(
        id=parse_guid(data["id"]),
        version=_version(data["ver"]),
        modified_on=_optional_text(data.get("mod")),
        values=_values(data["f"]),
    )


def _member_of(data: Any) -> tuple[str, str]:
    account_id, contact_id = data
    return parse_guid(account_id), parse_guid(contact_id)


def _contact_of(data: dict[str, Any]) -> ContactChange:
    if data.get("deleted"):
        return ContactChange(id=parse_guid(data["id"]), deleted=True)
    parent = data.get("parent")
    return ContactChange(
        id=parse_guid(data["id"]),
        version=_version(data["ver"]),
        parent_id=None if parent is None else parse_guid(parent),
        parent_type=_optional_text(data.get("ptype")),
        modified_on=_optional_text(data.get("mod")),
        values=_values(data["f"]),
    )


# Ids become table keys and versions order changes: a message is checked before either is
# used, so a forged or corrupted batch fails as a whole (and goes to poison) instead.
def _version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"version {value!r} is not a non-negative whole number")
    return value


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


def _optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{value!r} is not text")
    return value


def _values(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("the field values are not an object")
    return {str(k): v for k, v in value.items()}


Kind = Literal["accounts", "contacts", "members"]


@dataclass
class Packed:
    """The encoded changes of one batch, waiting for its header."""

    accounts: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def records(self) -> int:
        return len(self.accounts) + len(self.contacts)

    def add(self, kind: Kind, fragment: str) -> None:
        getattr(self, kind).append(fragment)
        self.size += len(fragment) + 1  # and its comma


class BatchPacker:
    """Encoded changes into batches of at most `budget` bytes of changes: one (kind, partition)
    per batch while they stream in, the remainders of all of them packed together at the end.

    It holds at most one unfinished batch per kind and partition, however long the stream.
    """

    def __init__(self, budget: int):
        self.budget = budget
        self._open: dict[tuple[Kind, str], Packed] = {}

    def fits(self, fragment: str) -> bool:
        return len(fragment) + 1 <= self.budget

    def add(self, kind: Kind, partition: str, fragment: str) -> Packed | None:
        """Add a change that fits; returns the partition's batch when this one filled it."""
        key = (kind, partition)
        current = self._open.setdefault(key, Packed())
        full = None
        if current.size + len(fragment) + 1 > self.budget:
            full, current = current, Packed()
            self._open[key] = current
        current.add(kind, fragment)
        return full

    def flush(self) -> Iterator[Packed]:
        """What is left, in partition order, packed together."""
        current = Packed()
        for (kind, _), pending in sorted(self._open.items()):
            for fragment in getattr(pending, kind):
                if current.size + len(fragment) + 1 > self.budget:
                    yield current
                    current = Packed()
                current.add(kind, fragment)
        self._open.clear()
        if current.size:
            yield current


def header_budget(header: Batch, max_bytes: int = MAX_MESSAGE_BYTES) -> int:
    """How many bytes of changes a batch with this header can carry in one queue message."""
    empty = encode_batch(header, accounts=[], contacts=[], members=[])
    return max_bytes - len(empty.encode()) - 16  # a margin for a longer batch number
