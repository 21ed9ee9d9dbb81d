"""The mapping from Web API values to Table Storage values and back, and the threshold rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from azure.data.tables import EdmType, EntityProperty
from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import (
    ColumnType,
    UnstorableValue,
    activity_value,
    check_entity,
    column_of,
    column_type,
    columns_of,
    label_of,
    labels_of,
    read_column,
    set_column,
    set_label,
    to_json,
    to_stored,
    utf16_units,
    web_api_property,
)
from shared.threshold import contacts_to_count, logs_activities


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        (ColumnType.STRING, "Contoso", "Contoso"),
        (ColumnType.CHOICE, 16, 16),
        (ColumnType.MONEY, 20000.0, 20000.0),
        (ColumnType.INTEGER, 250, 250),
        (ColumnType.BOOLEAN, True, True),
        (
            ColumnType.LOOKUP,
            "60C4E274-0D87-E711-80E5-00155DB19E6D",
            "60c4e274-0d87-e711-80e5-00155db19e6d",
        ),
        (ColumnType.DATETIME, "2023-04-07T21:59:01Z", datetime(2023, 4, 7, 21, 59, 1, tzinfo=UTC)),
        (ColumnType.DATETIME, "2023-04-07", "2023-04-07"),
    ],
)
def test_values_round_trip(kind: ColumnType, value: object, stored: object) -> None:
    assert to_stored("col", kind, value) == stored
    expected = value.lower() if kind is ColumnType.LOOKUP and isinstance(value, str) else value
    assert to_json(to_stored("col", kind, value)) == expected


def test_bigint_is_stored_as_int64() -> None:
    stored = to_stored("versionnumber", ColumnType.BIGINT, 2**40)
    assert isinstance(stored, EntityProperty)
    assert stored.edm_type is EdmType.INT64
    assert to_json(stored) == 2**40


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        (ColumnType.STRING, 5, "expected text"),
        (ColumnType.INTEGER, 2**31, "32-bit"),
        (ColumnType.INTEGER, 1.5, "whole number"),
        (ColumnType.MONEY, "12", "expected a number"),
        (ColumnType.BOOLEAN, 1, "true or false"),
        (ColumnType.LOOKUP, "not-a-guid", "GUID"),
        (ColumnType.DATETIME, "2023-04-07T21:59:01", "time zone"),
        # Dates are checked as dates, within what Dynamics and Table Storage both hold.
        (ColumnType.DATETIME, "2026-13-45", "not a date of the calendar"),
        (ColumnType.DATETIME, "0000-00-00", "not a date of the calendar"),
        (ColumnType.DATETIME, "2026-01-01\n", "not a date-time"),
        (ColumnType.DATETIME, "2026-01-01T00:00:00Z\n", "not a date-time"),
        (ColumnType.DATETIME, "2026-W01-1T00:00:00Z", "not a date-time"),
        (ColumnType.DATETIME, "\u0662\u0660\u0662\u0666-01-01", "not a date-time"),
        (ColumnType.DATETIME, "1600-12-31T00:00:00Z", "outside what Dynamics holds"),
        (ColumnType.DATETIME, "1752-12-31", "outside what Dynamics holds"),
        (ColumnType.DATETIME, "0001-01-01T00:00:00+05:00", "outside the years 1 to 9999"),
    ],
)
def test_unstorable_values_name_the_column(kind: ColumnType, value: object, reason: str) -> None:
    with pytest.raises(UnstorableValue, match=f"'colname'.*{reason}"):
        to_stored("colname", kind, value)


def test_entity_limits() -> None:
    check_entity({"PartitionKey": "p", "RowKey": "r", **{f"f_{i}": i for i in range(252)}})
    with pytest.raises(UnstorableValue, match="at most 252"):
        check_entity({f"f_{i}": i for i in range(253)})
    with pytest.raises(UnstorableValue, match="1 MiB"):
        check_entity({f"f_{i}": "x" * 30_000 for i in range(20)})


def test_labels_sit_beside_their_values_and_are_dropped_before_a_row_is_refused() -> None:
    assert label_of(30, "Transportation") == "Transportation"
    assert label_of(250, "250") is None  # says nothing more than the value
    assert label_of("Contoso", "Contoso") is None
    assert label_of(True, "Yes") == "Yes"
    assert label_of(None, "x") is None and label_of(1, None) is None
    assert label_of(1, "é" * 5_000) == "é" * 1_000
    entity: dict[str, object] = {"PartitionKey": "p", "RowKey": "r"}
    set_column(entity, "industrycode", 30)
    set_label(entity, "industrycode", "Transportation")
    assert columns_of(entity) == {"industrycode": 30}  # a label is no column
    assert labels_of(entity) == {"industrycode": "Transportation"}
    assert column_of("f_industrycode__FMT") == "industrycode"
    set_column(entity, "industrycode", 5)  # a new value: the old label no longer fits
    assert labels_of(entity) == {}
    # 250 columns fit; their labels would not: the labels go, the values stay.
    full = {"PartitionKey": "p", "RowKey": "r", **{f"f_{i}": i for i in range(250)}}
    full |= {f"f_{i}__FMT": f"label {i}" for i in range(10)}
    check_entity(full)
    assert len(full) == 2 + 252 and len(labels_of(full)) == 2


def test_lookups_travel_as_value_properties() -> None:
    assert column_type("Customer") is ColumnType.LOOKUP
    assert column_type("Virtual") is None
    assert web_api_property("parentaccountid", ColumnType.LOOKUP) == "_parentaccountid_value"
    assert web_api_property("name", ColumnType.STRING) == "name"


@given(st.text(max_size=200))
def test_any_short_text_round_trips(text: str) -> None:
    assert to_json(to_stored("c", ColumnType.STRING, text)) == text


@given(st.integers())
def test_integers_are_stored_or_refused_never_truncated(number: int) -> None:
    try:
        assert to_json(to_stored("c", ColumnType.INTEGER, number)) == number
    except UnstorableValue:
        assert not -(2**31) <= number < 2**31


def test_threshold_rule_at_the_boundary() -> None:
    assert logs_activities(5000, 5000)
    assert not logs_activities(5001, 5000)
    assert logs_activities(0, 0)
    assert contacts_to_count(5000) == 5001


def test_long_text_spans_properties_and_reads_back_whole() -> None:
    # 200 kB of mixed text, with characters past U+FFFF (two UTF-16 units each) on the seams.
    text = ("Beschreibung 😀 " * 13_000)[:200_000]
    entity: dict[str, object] = {"PartitionKey": "p", "RowKey": "r"}
    set_column(entity, "description", text)
    parts = [k for k in entity if k.startswith("f_description")]
    assert len(parts) > 1 and "f_description__C1" in parts
    for name in parts:
        value = entity[name]
        assert isinstance(value, str) and utf16_units(value) <= 32_768
    assert read_column(entity, "description") == text
    assert columns_of(entity) == {"description": text}
    assert column_of("f_description__C3") == "description"
    check_entity(entity)
    set_column(entity, "description", "short")
    assert [k for k in entity if k.startswith("f_description")] == ["f_description"]
    set_column(entity, "description", None)
    assert read_column(entity, "description") is None


def test_sizes_are_counted_as_utf16() -> None:
    assert utf16_units("abc") == 3
    assert utf16_units("語") == 1
    assert utf16_units("😀") == 2
    # 300,000 CJK characters are 600 KB as UTF-16 however few bytes they are in UTF-8.
    entity: dict[str, object] = {}
    set_column(entity, "memo", "語" * 300_000)
    set_column(entity, "other", "語" * 300_000)
    with pytest.raises(UnstorableValue, match="1 MiB"):
        check_entity(entity)


def test_activity_values_fit_one_property_and_say_when_cut() -> None:
    cjk = "語" * 6_000
    text, cut = activity_value(cjk)
    assert (json.loads(text), cut) == (cjk, False)
    assert utf16_units(text) < 7_000  # UTF-8 in the JSON, not \\u escapes (6 units each)
    long_text, cut = activity_value("x" * 200_000)
    assert cut is True
    assert utf16_units(long_text) <= 30_000
    assert json.loads(long_text) == "x" * (len(json.loads(long_text)))
    assert activity_value(12.5) == ("12.5", False)
