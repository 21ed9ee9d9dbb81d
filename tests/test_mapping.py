"""The mapping from Web API values to Table Storage values and back, and the threshold rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.data.tables import EdmType, EntityProperty
from hypothesis import given
from hypothesis import strategies as st

from shared.mapping import (
    ColumnType,
    UnstorableValue,
    check_entity,
    column_type,
    to_json,
    to_stored,
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
        (ColumnType.STRING, "x" * 40_000, "64 KiB"),
        (ColumnType.STRING, 5, "expected text"),
        (ColumnType.INTEGER, 2**31, "32-bit"),
        (ColumnType.INTEGER, 1.5, "whole number"),
        (ColumnType.MONEY, "12", "expected a number"),
        (ColumnType.BOOLEAN, 1, "true or false"),
        (ColumnType.LOOKUP, "not-a-guid", "GUID"),
        (ColumnType.DATETIME, "2023-04-07T21:59:01", "time zone"),
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
