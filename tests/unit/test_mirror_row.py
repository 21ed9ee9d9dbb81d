"""A mirrored row's bookkeeping read in one place, and the one column diff."""

from __future__ import annotations

from typing import Any

from azure.data.tables import EdmType, EntityProperty

from shared.mapping import set_column
from shared.mirror.row import (
    LOCALLY_MODIFIED,
    FieldChange,
    column_changes,
    drop_local_edits,
    generation_of,
    is_deleted,
    is_sync_filtered,
    local_edits,
    put_local_edits,
    version_of,
    version_property,
)


def row(**columns: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": "01", "RowKey": "a"}
    for column, value in columns.items():
        set_column(entity, column, value)
    return entity


def test_bookkeeping_reads_default_for_a_row_without_it() -> None:
    bare = row()
    assert (version_of(bare), generation_of(bare)) == (0, 0)
    assert not is_deleted(bare) and not is_sync_filtered(bare)
    assert local_edits(bare) == []


def test_a_version_is_stored_as_int64_and_read_back() -> None:
    stored = version_property(2**40)
    assert isinstance(stored, EntityProperty) and stored.edm_type is EdmType.INT64
    assert version_of({"version": stored}) == 2**40
    assert version_of({"version": 7}) == 7


def test_local_edits_written_and_dropped_for_columns_dynamics_writes_again() -> None:
    edited: dict[str, Any] = {}
    put_local_edits(edited, ["name", "revenue"])
    assert edited[LOCALLY_MODIFIED] == '["name", "revenue"]'  # the stored form is unchanged
    entity: dict[str, Any] = {}
    assert not drop_local_edits(entity, edited, ["industrycode"])
    assert entity == {}
    assert drop_local_edits(entity, edited, ["name"])
    assert local_edits(entity) == ["revenue"]


def test_column_changes_compare_as_web_api_values() -> None:
    old = row(name="Contoso", revenue=1000.0)
    changes = column_changes(old, {"name": "Contoso", "revenue": 2000.0, "telephone1": None})
    assert changes == [FieldChange("revenue", 1000.0, 2000.0)]
    assert column_changes(old, {"telephone1": "555"}) == [FieldChange("telephone1", None, "555")]
