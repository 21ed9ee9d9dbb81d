"""The mapping from Dataverse Web API values to mirror (Table Storage) values and back.

Dataverse sends JSON; Table Storage stores typed properties with hard limits (a string is at
most 64 KiB as UTF-16, an entity at most 1 MiB, 252 custom properties). Every value is checked
on the way in, so a value the mirror cannot hold becomes a sync error on that record instead
of a failed batch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from shared.ids import InvalidId, parse_guid

FIELD_PREFIX = "f_"
MAX_STRING_BYTES = 64 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
MAX_CUSTOM_PROPERTIES = 252
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ColumnType(StrEnum):
    STRING = "string"
    CHOICE = "choice"
    MONEY = "money"
    INTEGER = "integer"
    BIGINT = "bigint"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    LOOKUP = "lookup"
    GUID = "guid"


# Dataverse AttributeType → mirror type; types not listed (Virtual, EntityName, PartyList,
# ManagedProperty, ...) cannot be selected.
_ATTRIBUTE_TYPES: dict[str, ColumnType] = {
    "String": ColumnType.STRING,
    "Memo": ColumnType.STRING,
    "Picklist": ColumnType.CHOICE,
    "State": ColumnType.CHOICE,
    "Status": ColumnType.CHOICE,
    "Money": ColumnType.MONEY,
    "Integer": ColumnType.INTEGER,
    "BigInt": ColumnType.BIGINT,
    "Decimal": ColumnType.DECIMAL,
    "Double": ColumnType.DECIMAL,
    "Boolean": ColumnType.BOOLEAN,
    "DateTime": ColumnType.DATETIME,
    "Lookup": ColumnType.LOOKUP,
    "Customer": ColumnType.LOOKUP,
    "Owner": ColumnType.LOOKUP,
    "Uniqueidentifier": ColumnType.GUID,
}


class UnstorableValue(ValueError):
    """A value that the mirror cannot hold; the message says which column and why."""


def column_type(attribute_type: str) -> ColumnType | None:
    """The mirror type of a Dataverse attribute type, or None when it cannot be mirrored."""
    return _ATTRIBUTE_TYPES.get(attribute_type)


def web_api_property(column: str, kind: ColumnType) -> str:
    """The JSON property that carries a column: lookups travel as `_<name>_value`."""
    return f"_{column}_value" if kind is ColumnType.LOOKUP else column


def property_name(column: str) -> str:
    """The Table Storage property holding a mirrored column (prefixed to avoid system names)."""
    return FIELD_PREFIX + column


def to_stored(column: str, kind: ColumnType, value: Any) -> Any:
    """A Web API value as a typed Table Storage value; None stays None (the column is empty)."""
    if value is None:
        return None
    try:
        return _CONVERTERS[kind](value)
    except (TypeError, ValueError, OverflowError) as error:
        raise UnstorableValue(f"column {column!r} ({kind}): {error}") from None


def to_json(stored: Any) -> Any:
    """A stored value back in the form the Web API sent it (the stored type says how)."""
    if isinstance(stored, EntityProperty):
        return stored.value
    if isinstance(stored, datetime):
        return stored.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return stored


def check_entity(entity: Mapping[str, Any]) -> None:
    """Raise UnstorableValue when an entity breaks Table Storage's size or property limits."""
    custom = [name for name in entity if name not in ("PartitionKey", "RowKey")]
    if len(custom) > MAX_CUSTOM_PROPERTIES:
        raise UnstorableValue(
            f"{len(custom)} properties; Table Storage holds at most {MAX_CUSTOM_PROPERTIES}: "
            "select fewer columns"
        )
    size = 4 + sum(8 + 2 * len(name) + _value_size(value) for name, value in entity.items())
    if size > MAX_ENTITY_BYTES:
        raise UnstorableValue(
            f"the record is about {size} bytes; Table Storage holds at most 1 MiB per entity: "
            "deselect a large text column"
        )


def _value_size(value: Any) -> int:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, str):
        return 4 + len(value.encode("utf-16-le"))
    if isinstance(value, bool):
        return 1
    return 8


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    if len(value.encode("utf-16-le")) > MAX_STRING_BYTES:
        raise ValueError(
            f"text of {len(value)} characters is over Table Storage's 64 KiB property limit"
        )
    return value


def _whole(value: Any, bounds: tuple[int, int], label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a whole number, got {type(value).__name__}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    number = int(value)
    if not bounds[0] <= number <= bounds[1]:
        raise ValueError(f"{number} does not fit in {label}")
    return number


def _int32(value: Any) -> int:
    return _whole(value, INT32_RANGE, "a 32-bit integer")


def _int64(value: Any) -> EntityProperty:
    return EntityProperty(_whole(value, INT64_RANGE, "a 64-bit integer"), EdmType.INT64)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _datetime(value: Any) -> datetime | str:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 date-time, got {type(value).__name__}")
    if _DATE_ONLY.match(value):
        return value  # date-only columns have no time zone; keep the text as sent
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; Dataverse sends UTC with Z")
    return parsed.astimezone(UTC)


def _guid(value: Any) -> str:
    try:
        return parse_guid(value)
    except InvalidId as error:
        raise ValueError(str(error)) from None


_CONVERTERS = {
    ColumnType.STRING: _string,
    ColumnType.CHOICE: _int32,
    ColumnType.MONEY: _number,
    ColumnType.INTEGER: _int32,
    ColumnType.BIGINT: _int64,
    ColumnType.DECIMAL: _number,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.DATETIME: _datetime,
    ColumnType.LOOKUP: _guid,
    ColumnType.GUID: _guid,
}
