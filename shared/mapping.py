"""The mapping from Dataverse Web API values to mirror (Table Storage) values and back.

Dataverse sends JSON; Table Storage stores typed properties with hard limits (a string
property is at most 64 KiB as UTF-16, an entity at most 1 MiB, 252 custom properties), and
counts text as UTF-16 whatever the characters. A column lives in the property `f_<name>`;
text longer than one property holds continues in `f_<name>__C1`, `f_<name>__C2`, ... (an
upper-case letter cannot occur in a Dataverse logical name, so these never collide with a
column). A column's label as Dynamics formats it (an option's label, a lookup's name, money with
its symbol) lives beside it in `f_<name>__FMT`, only when it says more than the raw value; labels
are display only: never compared, and the first thing dropped when a row would not fit. Every
value is checked on the way in, so a value the mirror cannot hold becomes a sync error on that
record instead of a failed batch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from shared.errors import AcctsyncError
from shared.ids import InvalidId, parse_guid
from shared.times import DATAVERSE_EARLIEST, DATAVERSE_LATEST, parse_iso, within_dataverse

FIELD_PREFIX = "f_"
CHUNK_MARK = "__C"
LABEL_MARK = "__FMT"
# UTF-16 code units a label keeps: it is read by people, beside the value it names.
LABEL_UNITS = 1_000
# UTF-16 code units per property of long text: under the 32,768 a property holds.
CHUNK_UNITS = 32_000
# An activity's old or new value, as JSON text, is cut to fit one property with room to spare.
ACTIVITY_VALUE_UNITS = 30_000
MAX_ENTITY_BYTES = 1024 * 1024
MAX_CUSTOM_PROPERTIES = 252
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
# The two forms the Web API writes (ASCII digits, nothing around them): a date-only column's
# day, and a UTC date-time; the parsers would also take week dates, compact forms, spaces.
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_CHUNK = re.compile(r"__C\d+$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# What XML 1.0 cannot carry (C0 controls but tab, LF and CR; U+FFFE, U+FFFF): Dynamics moves
# text through XML (FetchXML, SOAP, plug-ins), which fails on these, so an edit may not set them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# The properties that belong to a column without holding its value: text parts and its label.
_BESIDE = re.compile(r"(__C\d+|__FMT)$")


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


class UnstorableValue(AcctsyncError, ValueError):
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


def column_of(property_name: str) -> str | None:
    """The column a Table Storage property belongs to (its value, a part of it or its label),
    or None for other properties."""
    if not property_name.startswith(FIELD_PREFIX):
        return None
    return _BESIDE.sub("", property_name[len(FIELD_PREFIX) :])


def read_column(entity: Mapping[str, Any], column: str) -> Any:
    """A column's stored value (long text joined again), None when the column is empty."""
    name = property_name(column)
    value = entity.get(name)
    if isinstance(value, str) and (name + CHUNK_MARK + "1") in entity:
        parts = [value]
        index = 1
        while (part := entity.get(f"{name}{CHUNK_MARK}{index}")) is not None:
            parts.append(part)
            index += 1
        return "".join(parts)
    return value


def columns_of(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Every mirrored column of an entity with its stored value."""
    return {
        name[len(FIELD_PREFIX) :]: read_column(entity, name[len(FIELD_PREFIX) :])
        for name in entity
        if name.startswith(FIELD_PREFIX) and not _BESIDE.search(name)
    }


def set_column(entity: dict[str, Any], column: str, stored: Any) -> None:
    """Put a stored value into an entity (over as many properties as it needs); None empties
    the column. Its label goes with the old value (`set_label` gives the new one its own)."""
    drop_column(entity, column)
    if stored is None:
        return
    name = FIELD_PREFIX + column
    if not isinstance(stored, str) or utf16_units(stored) <= CHUNK_UNITS:
        entity[name] = stored
        return
    for index, part in enumerate(_utf16_chunks(stored, CHUNK_UNITS)):
        entity[name if index == 0 else f"{name}{CHUNK_MARK}{index}"] = part


def drop_column(entity: dict[str, Any], column: str) -> None:
    name = property_name(column)
    entity.pop(name, None)
    entity.pop(name + LABEL_MARK, None)
    index = 1  # the parts of long text are numbered from 1 without gaps
    while entity.pop(f"{name}{CHUNK_MARK}{index}", None) is not None:
        index += 1


def label_of(raw: Any, formatted: Any) -> str | None:
    """The label worth keeping of a raw Web API value: its formatted value when that is text
    saying something else than the raw value does (`Transportation` for 30, not `Contoso` for
    `Contoso`), cut to LABEL_UNITS."""
    if not isinstance(formatted, str) or not formatted or raw is None:
        return None
    if formatted == (raw if isinstance(raw, str) else json.dumps(raw)):
        return None
    return _utf16_chunks(formatted, LABEL_UNITS)[0]


def read_label(entity: Mapping[str, Any], column: str) -> str | None:
    label = entity.get(property_name(column) + LABEL_MARK)
    return label if isinstance(label, str) else None


def labels_of(entity: Mapping[str, Any]) -> dict[str, str]:
    """Every stored label of an entity, by column."""
    return {
        name[len(FIELD_PREFIX) : -len(LABEL_MARK)]: value
        for name, value in entity.items()
        if name.startswith(FIELD_PREFIX) and name.endswith(LABEL_MARK) and isinstance(value, str)
    }


def set_label(entity: dict[str, Any], column: str, label: str | None) -> None:
    """Put a column's label beside its value (set that first); None: the column has none."""
    name = property_name(column) + LABEL_MARK
    if label is None:
        entity.pop(name, None)
    else:
        entity[name] = label


def utf16_units(text: str) -> int:
    """Length as Table Storage counts it: UTF-16 code units (two for a character past U+FFFF)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _utf16_chunks(text: str, units: int) -> list[str]:
    """Consecutive pieces of at most `units` UTF-16 code units, never splitting a character."""
    chunks: list[str] = []
    start = count = 0
    for index, char in enumerate(text):
        size = 2 if ord(char) > 0xFFFF else 1
        if count + size > units:
            chunks.append(text[start:index])
            start, count = index, 0
        count += size
    chunks.append(text[start:])
    return chunks


@dataclass(frozen=True)
class ActivityValue:
    """An activity's old or new value already as `activity_value` made it: kept this way (a
    local edit's pending record) it logs the same activity again, truncation mark included."""

    text: str
    truncated: bool


def activity_value(value: Any) -> tuple[str, bool]:
    """A Change Data Value's old or new value as JSON text that fits one property, and whether
    it had to be truncated (only long text ever is)."""
    if isinstance(value, ActivityValue):
        return value.text, value.truncated
    text = json.dumps(value, ensure_ascii=False)
    if utf16_units(text) <= ACTIVITY_VALUE_UNITS or not isinstance(value, str):
        return text, False
    keep = len(value)
    while utf16_units(text) > ACTIVITY_VALUE_UNITS:
        keep = max(0, keep * ACTIVITY_VALUE_UNITS // utf16_units(text) - 16)
        text = json.dumps(value[:keep], ensure_ascii=False)
    return text, True


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


def check_entity(entity: dict[str, Any]) -> None:
    """Raise UnstorableValue when an entity breaks Table Storage's size or property limits.
    Labels are dropped first, longest first, until it fits: display only, they are never worth
    a sync error."""
    labels = sorted(
        (n for n in entity if n.endswith(LABEL_MARK)), key=lambda n: _value_size(entity[n])
    )
    while (problem := _limit_problem(entity)) and labels:
        entity.pop(labels.pop())
    if problem:
        raise UnstorableValue(problem)


def _limit_problem(entity: Mapping[str, Any]) -> str | None:
    custom = [name for name in entity if name not in ("PartitionKey", "RowKey")]
    if len(custom) > MAX_CUSTOM_PROPERTIES:
        return (
            f"{len(custom)} properties; Table Storage holds at most {MAX_CUSTOM_PROPERTIES}: "
            "select fewer columns"
        )
    size = 4 + sum(8 + 2 * len(name) + _value_size(value) for name, value in entity.items())
    if size > MAX_ENTITY_BYTES:
        return (
            f"the record is about {size} bytes; Table Storage holds at most 1 MiB per entity: "
            "deselect a large text column"
        )
    return None


def _value_size(value: Any) -> int:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, str):
        return 4 + 2 * utf16_units(value)
    if isinstance(value, bool):
        return 1
    return 8


def _string(value: Any) -> str:
    # Any length: long text spans properties (set_column); check_entity bounds the whole row.
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    if _LONE_SURROGATE.search(value):
        # JSON can escape half a UTF-16 pair; no storage service can encode it.
        raise ValueError("the text holds half of a UTF-16 surrogate pair, which is no character")
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
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _datetime(value: Any) -> datetime | str:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 date-time, got {type(value).__name__}")
    if _DATE_ONLY.fullmatch(value):
        # Date-only columns have no time zone: the text is kept as sent, once it is a real day.
        try:
            day = date.fromisoformat(value)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a date of the calendar: {error}") from None
        _within_dataverse(datetime.combine(day, time.min, UTC), value)
        return value
    if not _DATE_TIME.fullmatch(value):
        raise ValueError(
            f"{value[:40]!r} is not a date-time with its time zone, such as 2026-01-31T09:30:00Z "
            "(or a date such as 2026-01-31)"
        )
    return _within_dataverse(parse_iso(value), value)


def _within_dataverse(moment: datetime, value: str) -> datetime:
    # Table Storage refuses times before 1601; Dynamics holds less still.
    if not within_dataverse(moment):
        raise ValueError(
            f"{value!r} is outside what Dynamics holds ({DATAVERSE_EARLIEST:%Y-%m-%d} to "
            f"{DATAVERSE_LATEST:%Y-%m-%d})"
        )
    return moment


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


@dataclass(frozen=True)
class ColumnLimits:
    """What Dynamics itself lets a column hold (its metadata): a local edit must stay within
    it, or the mirror would hold a value Dynamics never could."""

    required: bool = False
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    precision: int | None = None
    options: tuple[int, ...] | None = None

    def problem(self, column: str, value: Any) -> str | None:
        """Why `value` does not fit the column, naming the limit; None when it fits."""
        if value is None:
            return (
                f"{column!r} is required in Dynamics and cannot be empty" if self.required else None
            )
        if isinstance(value, str) and (bad := _NOT_XML.search(value)):
            return (
                f"{column!r} holds the control character U+{ord(bad.group()):04X}, which "
                "Dynamics cannot carry; remove it"
            )
        if isinstance(value, str) and self.max_length is not None:
            # Dynamics counts .NET string length: UTF-16 code units.
            length = utf16_units(value)
            if length > self.max_length:
                return (
                    f"{column!r} is {length:,} characters; Dynamics holds at most "
                    f"{self.max_length:,} (its MaxLength)"
                )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if self.options is not None and value not in self.options:
            return (
                f"{column!r} must be one of its option values {list(self.options)}, not {value!r}"
            )
        if self.min_value is not None and value < self.min_value:
            return f"{column!r} is {value:,}, below its MinValue {self.min_value:,.15g}"
        if self.max_value is not None and value > self.max_value:
            return f"{column!r} is {value:,}, above its MaxValue {self.max_value:,.15g}"
        if self.precision is not None and round(value, self.precision) != value:
            return f"{column!r} has more than {self.precision} decimal places (its Precision)"
        return None

    def to_json(self) -> dict[str, Any]:
        # Only what is set; a limit of 0 (MinValue, Precision) is a limit too.
        return {k: v for k, v in asdict(self).items() if v is not None and v is not False}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnLimits:
        options = data.get("options")
        return cls(
            required=bool(data.get("required", False)),
            max_length=data.get("max_length"),
            min_value=data.get("min_value"),
            max_value=data.get("max_value"),
            precision=data.get("precision"),
            options=tuple(options) if options is not None else None,
        )
