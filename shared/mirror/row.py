"""A mirrored row: the bookkeeping properties it carries beside its columns, read and written
in one place.

Every account and contact row holds its mirrored columns (shared.mapping names their
properties) and the properties below, which the apply step, the sweep, the sync filter and
local edits own. The property names are stored in Table Storage: they never change. Local edits
are a JSON array of column names in one property; `local_edits` parses it, `put_local_edits`
writes it. `column_changes` is the one comparison of a row's columns with new values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from azure.data.tables import EdmType, EntityProperty

from shared.mapping import read_column, to_json

VERSION: Final = "version"  # the Dataverse versionnumber applied, Edm.Int64
MODIFIED_ON: Final = "modified_on"  # Dynamics' modifiedon of that version
SYNCED_AT: Final = "synced_at"  # when a sync last wrote the row
LOAD_SYNC: Final = "load_sync"  # written by a first load still under way (SyncMark)
IS_DELETED: Final = "is_deleted"  # Dynamics deleted the record: kept, flagged
DELETED_AT: Final = "deleted_at"
LOCALLY_MODIFIED: Final = "locally_modified"  # JSON array of locally edited columns
GENERATION: Final = "generation"  # the last full re-load that saw the row
SYNC_FILTERED: Final = "sync_filtered"  # the sync filter keeps the account out (Yes → No)
FILTERED_AT: Final = "filtered_at"

# Properties the apply step owns; everything else on an account row is a mirrored column.
BOOKKEEPING: Final = (
    VERSION,
    MODIFIED_ON,
    SYNCED_AT,
    LOAD_SYNC,
    IS_DELETED,
    DELETED_AT,
    LOCALLY_MODIFIED,
    GENERATION,
    SYNC_FILTERED,
    FILTERED_AT,
)


def version_of(row: Mapping[str, Any]) -> int:
    """The Dataverse versionnumber a mirrored row holds (0 before any)."""
    value = row.get(VERSION, 0)
    return int(value.value if isinstance(value, EntityProperty) else value)


def version_property(version: int) -> EntityProperty:
    """A version as stored: Edm.Int64, which a plain int above 2**31 would not be typed as."""
    return EntityProperty(version, EdmType.INT64)


def generation_of(row: Mapping[str, Any]) -> int:
    """The last full re-load that saw the row (0: none did)."""
    return int(row.get(GENERATION, 0) or 0)


def is_deleted(row: Mapping[str, Any]) -> bool:
    return bool(row.get(IS_DELETED))


def is_sync_filtered(row: Mapping[str, Any]) -> bool:
    return bool(row.get(SYNC_FILTERED))


def local_edits(row: Mapping[str, Any]) -> list[str]:
    """The columns edited locally since Dynamics last wrote them."""
    marks: list[str] = json.loads(row.get(LOCALLY_MODIFIED) or "[]")
    return marks


def put_local_edits(entity: dict[str, Any], columns: Iterable[str]) -> None:
    entity[LOCALLY_MODIFIED] = json.dumps(list(columns))


def drop_local_edits(
    entity: dict[str, Any], row: Mapping[str, Any], columns: Iterable[str]
) -> bool:
    """Clear the marks of `columns` (written from Dynamics now) from `row`'s local edits into
    `entity`; whether any was marked."""
    dropped = set(columns)
    marks = local_edits(row)
    kept = [m for m in marks if m not in dropped]
    if kept == marks:
        return False
    put_local_edits(entity, kept)
    return True


@dataclass(frozen=True)
class FieldChange:
    """A column whose value changes, with its old and new value as a Change Data Value
    activity shows them (Web API JSON values, or ActivityValue once encoded)."""

    field: str
    old: Any
    new: Any


def column_changes(row: Mapping[str, Any], stored: Mapping[str, Any]) -> list[FieldChange]:
    """The columns whose stored values differ from what `row` holds, compared as the Web API
    values they stand for (a value stored another way but equal is no change)."""
    changes = []
    for column, value in stored.items():
        before, after = to_json(read_column(row, column)), to_json(value)
        if before != after:
            changes.append(FieldChange(column, before, after))
    return changes


@dataclass(frozen=True)
class SyncMark:
    """How a row written by a sync is marked: when (`synced_at`), and whether by a first load,
    whose rows have no synced-stream entry (shared/mirror/initial.py): a later ordinary sync
    marks the row `load_sync = false` again and indexes it."""

    at: datetime
    load_sync: bool = False

    def put(self, entity: dict[str, Any]) -> None:
        entity[SYNCED_AT] = self.at
        entity[LOAD_SYNC] = self.load_sync
