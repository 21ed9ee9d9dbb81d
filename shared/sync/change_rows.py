"""Mirror rows built from Dynamics changes: a contact's row, and an account's labels.

The planner checks with them that a contact can be stored; the apply step writes what they
build. What a row holds besides its columns is shared.mirror.row's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.dataverse.columns import CONTACT_COLUMNS
from shared.mapping import (
    ColumnType,
    UnstorableValue,
    check_entity,
    read_column,
    read_label,
    set_column,
    set_label,
    to_json,
    to_stored,
    utf16_units,
)
from shared.mirror.records import bucket
from shared.mirror.row import GENERATION, IS_DELETED, VERSION, SyncMark, version_property
from shared.sync.batches import AccountChange, ContactChange

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def contact_row(
    change: ContactChange,
    *,
    account_id: str,
    synced: SyncMark,
    generation: int = 0,
    old: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A contact's mirror row; UnstorableValue for a value Table Storage cannot hold. A column
    the change does not carry (the sync user cannot read it now) keeps its `old` value."""
    assert change.version is not None
    entity: dict[str, Any] = {
        "PartitionKey": bucket(change.id),
        "RowKey": change.id,
        VERSION: version_property(change.version),
        IS_DELETED: False,
        "accountid": account_id,
        "parent_id": (change.parent_id or "").lower(),
        "parent_type": change.parent_type or "",
        GENERATION: generation,
    }
    synced.put(entity)
    carried = contact_columns(change)
    if old is not None:
        for column in CONTACT_COLUMNS.keys() - carried.keys():
            set_column(entity, column, read_column(old, column))
            set_label(entity, column, read_label(old, column))
    for column, stored in carried.items():
        set_column(entity, column, stored)
        set_label(entity, column, change.labels.get(column))
    check_entity(entity)
    return entity


def relabel(
    entity: dict[str, Any], columns: Mapping[str, ColumnType], change: AccountChange
) -> bool:
    """Give each column whose stored value is the one Dynamics sent the label Dynamics sent
    with it (a value edited locally since keeps none); whether any label changed.
    UnstorableValue for a value the mirror cannot hold."""
    changed = False
    for column, kind in columns.items():
        label = change.labels.get(column)
        if read_label(entity, column) == label:
            continue
        sent = to_stored(column, kind, change.values.get(column))
        if to_json(read_column(entity, column)) == to_json(sent):
            set_label(entity, column, label)
            changed = True
    return changed


def contact_columns(change: ContactChange) -> dict[str, Any]:
    """The contact's mirrored columns as stored values; UnstorableValue for one that the
    mirror cannot hold."""
    return {
        column: to_stored(column, kind, change.values[column])
        for column, kind in CONTACT_COLUMNS.items()
        if column in change.values
    }


# Text under this many UTF-16 units, whatever it is, leaves a contact row far under 1 MiB.
_SAFE_TEXT_UNITS = 100_000


def contact_storable(change: ContactChange) -> bool:
    """Whether the apply step will be able to write the contact's row, checked cheaply: the
    whole row is built only when its text is long enough to matter."""
    try:
        values = contact_columns(change)
        text = sum(utf16_units(v) for v in values.values() if isinstance(v, str))
        if text >= _SAFE_TEXT_UNITS:
            contact_row(change, account_id=change.parent_id or "", synced=SyncMark(_EPOCH))
    except UnstorableValue:
        return False
    return True
