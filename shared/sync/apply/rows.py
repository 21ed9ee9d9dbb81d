"""Mirror rows built from changes: the contact row, and the bookkeeping every row carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from shared.dataverse.columns import CONTACT_COLUMNS
from shared.mapping import check_entity, set_column, to_stored
from shared.mirror.records import bucket
from shared.sync.batches import ContactChange

# Properties the apply step owns; everything else on an account row is a mirrored column.
BOOKKEEPING = (
    "version",
    "modified_on",
    "synced_at",
    "is_deleted",
    "deleted_at",
    "locally_modified",
    "generation",
)


def version_property(version: int) -> EntityProperty:
    return EntityProperty(version, EdmType.INT64)


def contact_row(
    change: ContactChange, *, account_id: str, synced_at: datetime, generation: int = 0
) -> dict[str, Any]:
    """A contact's mirror row; UnstorableValue for a value Table Storage cannot hold."""
    assert change.version is not None
    entity: dict[str, Any] = {
        "PartitionKey": bucket(change.id),
        "RowKey": change.id,
        "version": version_property(change.version),
        "synced_at": synced_at,
        "is_deleted": False,
        "accountid": account_id,
        "parent_id": (change.parent_id or "").lower(),
        "parent_type": change.parent_type or "",
        "generation": generation,
    }
    for column, kind in CONTACT_COLUMNS.items():
        set_column(entity, column, to_stored(column, kind, change.values.get(column)))
    check_entity(entity)
    return entity
