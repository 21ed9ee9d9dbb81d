"""Account and contact batches: what the cycle enqueues and the apply step reads.

A batch carries the raw Web API values of the changed rows, so applying it needs no call to
Dynamics. Rows are sorted by mirror partition before packing, so one batch mostly touches few
partitions and its writes go out as entity-group transactions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.ids import parse_guid
from shared.mapping import ColumnType

# A queue message holds 64 KiB after base64, so at most 48 KiB of JSON; keep a margin.
MAX_MESSAGE_BYTES = 46_000
FORMAT_VERSION = 1
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

    def encode(self) -> str:
        return json.dumps(
            {
                "v": FORMAT_VERSION,
                "cycle": self.cycle_id,
                "batch": self.batch_id,
                "mode": self.mode,
                "columns": {name: kind.value for name, kind in self.columns.items()},
                "traceparent": self.traceparent,
                "backfill": self.backfill,
                "accounts": [_account_json(a) for a in self.accounts],
                "contacts": [_contact_json(c) for c in self.contacts],
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | bytes) -> Batch:
        try:
            data = json.loads(text)
            if data.get("v") != FORMAT_VERSION:
                raise BadBatch(f"batch format {data.get('v')!r} is not {FORMAT_VERSION}")
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


@dataclass(frozen=True)
class Oversized:
    """A single change too large for any queue message."""

    entity: str
    id: str
    size: int


def pack(
    *,
    cycle_id: str,
    first_batch_number: int,
    mode: Mode,
    columns: dict[str, ColumnType],
    accounts: Iterable[AccountChange] = (),
    contacts: Iterable[ContactChange] = (),
    traceparent: str | None = None,
    backfill: list[str] | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> Iterator[Batch | Oversized]:
    """Changes packed into batches whose encoded form fits a queue message, in the order given."""
    number = first_batch_number
    backfill = backfill or []

    def batch(accounts: list[AccountChange], contacts: list[ContactChange]) -> Batch:
        return Batch(
            cycle_id, f"{number:06d}", mode, columns, accounts, contacts, traceparent, backfill
        )

    empty = batch([], [])
    overhead = len(empty.encode().encode()) + 16
    budget = max_bytes - overhead
    items: list[tuple[str, AccountChange | ContactChange, int]] = []
    for account in accounts:
        items.append(("account", account, len(json.dumps(_account_json(account)).encode()) + 1))
    for contact in contacts:
        items.append(("contact", contact, len(json.dumps(_contact_json(contact)).encode()) + 1))
    current_accounts: list[AccountChange] = []
    current_contacts: list[ContactChange] = []
    used = 0
    for entity, change, size in items:
        if size > budget:
            yield Oversized(entity, change.id, size)
            continue
        if used + size > budget:
            yield batch(current_accounts, current_contacts)
            number += 1
            current_accounts, current_contacts, used = [], [], 0
        if isinstance(change, AccountChange):
            current_accounts.append(change)
        else:
            current_contacts.append(change)
        used += size
    if current_accounts or current_contacts:
        yield batch(current_accounts, current_contacts)
