"""One table's rows as both sides hold them, reduced to what a verify compares.

Values are compared in the Web API's JSON form on both sides: a Dynamics value goes through
the same conversion the apply step stores it with (to_stored), and back (to_json); a mirrored
one is read back the way the API shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from azure.data.tables import TableEntity

from shared.dataverse.columns import ACCOUNT_ID, CONTACT_ID, PARENT_CUSTOMER, PARENT_TYPE
from shared.ids import InvalidId, InvalidVersion, parse_guid, parse_version
from shared.mapping import (
    ColumnType,
    UnstorableValue,
    read_column,
    to_json,
    to_stored,
    web_api_property,
)
from shared.mirror.row import (
    IS_DELETED,
    SYNC_FILTERED,
    VERSION,
    is_deleted,
    is_sync_filtered,
    local_edits,
    version_of,
)
from shared.times import iso
from shared.verify.cells import Fingerprint


@lru_cache(maxsize=4)
def _seconds_text(at: datetime) -> str:
    return iso(at) or ""


# Not frozen: one is built per row on each side, and a frozen dataclass is slower to build.
@dataclass(slots=True)
class ComparedRow:
    """What a verify compares of a record on either side: its id, version, account (a
    contact's) and, with --deep, its selected values."""

    id: str
    version: int
    account: str = ""
    values: Mapping[str, Any] | None = None

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.id, self.version, self.account, self.values)


@dataclass(slots=True)
class DynamicsRow(ComparedRow):
    modified_on: str | None = None
    filtered: bool = False  # the sync filter's explicit No keeps it out of the mirror

    def pending(self, read_at: datetime | None) -> bool:
        """Changed after the last cycle read its table (the next cycle takes it). Dynamics
        dates to the second: a change in the second of the read may have come after it."""
        if read_at is None or not self.modified_on:
            return False
        if len(self.modified_on) == 20 and self.modified_on[-1] == "Z":
            # The form Dataverse writes (seconds, UTC) orders as text: no parse per row.
            return self.modified_on >= _seconds_text(read_at)
        changed = to_stored("modifiedon", ColumnType.DATETIME, self.modified_on)
        if not isinstance(changed, datetime):
            return False
        return changed >= read_at.replace(microsecond=0)

    def to_json(self) -> list[Any]:
        return [self.id, self.version, self.account, self.values, self.modified_on, self.filtered]

    @classmethod
    def from_json(cls, data: list[Any]) -> DynamicsRow:
        return cls(data[0], int(data[1]), data[2], data[3], data[4], bool(data[5]))


@dataclass(slots=True)
class MirrorRow(ComparedRow):
    deleted: bool = False
    filtered: bool = False  # sync_filtered: kept as it was, no longer synced
    local: frozenset[str] = field(default_factory=frozenset)  # locally modified columns

    @property
    def compared(self) -> bool:
        """In the digests: live and still synced."""
        return not self.deleted and not self.filtered


@dataclass(frozen=True)
class TableSpec:
    """What a verify reads of one table."""

    entity_set: str
    deep: bool = False
    columns: Mapping[str, ColumnType] = field(default_factory=dict)  # compared with --deep
    filter_column: str = ""  # accounts: the sync filter's column, when it is active

    @property
    def key(self) -> str:
        return ACCOUNT_ID if self.entity_set == "accounts" else CONTACT_ID

    @property
    def contacts(self) -> bool:
        return self.entity_set == "contacts"

    def select(self) -> list[str]:
        """The Dynamics columns: the key, its version and date, what scope and account take,
        and with --deep the compared columns."""
        names = [self.key, "versionnumber", "modifiedon"]
        if self.contacts:
            names.append(PARENT_CUSTOMER)
        elif self.filter_column:
            names.append(self.filter_column)
        if self.deep:
            names += [web_api_property(c, t) for c, t in self.columns.items()]
        return list(dict.fromkeys(names))

    def mirror_select(self) -> list[str] | None:
        """The mirror properties: all with --deep (long text spans several properties)."""
        if self.deep:
            return None
        return ["RowKey", VERSION, IS_DELETED, SYNC_FILTERED, "accountid"]

    def dynamics_row(self, row: Mapping[str, Any]) -> DynamicsRow | None:
        """None for a row acctsync cannot mirror (the cycle records it as a sync error)."""
        try:
            record_id = parse_guid(row.get(self.key))
            version = parse_version(row.get("versionnumber"))
            parent = row.get(PARENT_CUSTOMER) if self.contacts else None
            account = parse_guid(parent) if parent and row.get(PARENT_TYPE) == "account" else ""
        except (InvalidId, InvalidVersion):
            return None
        filtered = bool(self.filter_column) and row.get(self.filter_column) is False
        return DynamicsRow(
            record_id,
            version,
            account,
            self._dynamics_values(row) if self.deep else None,
            row.get("modifiedon"),
            filtered,
        )

    def mirror_row(self, entity: TableEntity | dict[str, Any]) -> MirrorRow:
        local = local_edits(entity) if self.deep else []
        return MirrorRow(
            str(entity["RowKey"]),
            version_of(entity),
            str(entity.get("accountid") or "") if self.contacts else "",
            {c: to_json(read_column(entity, c)) for c in self.columns} if self.deep else None,
            is_deleted(entity),
            is_sync_filtered(entity),
            frozenset(local),
        )

    def _dynamics_values(self, row: Mapping[str, Any]) -> dict[str, Any]:
        values = {}
        for column, kind in self.columns.items():
            raw = row.get(web_api_property(column, kind))
            try:
                values[column] = to_json(to_stored(column, kind, raw))
            except UnstorableValue:
                values[column] = raw  # never mirrored: it differs, as it should
        return values

    def to_json(self) -> dict[str, Any]:
        return {
            "entity_set": self.entity_set,
            "deep": self.deep,
            "columns": {c: t.value for c, t in self.columns.items()},
            "filter_column": self.filter_column,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableSpec:
        return cls(
            data["entity_set"],
            bool(data["deep"]),
            {c: ColumnType(t) for c, t in data["columns"].items()},
            str(data["filter_column"]),
        )
