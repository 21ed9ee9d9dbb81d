"""Entity-group transactions written without azure-core's multipart code (shared/mirror/
transactions.py): the same entities as the SDK writes, in one request, and the SDK's own
errors when a transaction fails (issue 26: that code was most of a first load's CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableClient,
    TableErrorCode,
    TableServiceClient,
    TableTransactionError,
    TransactionOperation,
    UpdateMode,
)

from shared.mirror.transactions import submit_transaction

PARTITION = "p'1 ü"  # a quote (doubled in the URL) and a non-ASCII character


def _entity(number: int) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": f"r{number}ö",
        # Text that looks like the envelope: it must stay inside its part.
        "text": "tëxt\r\n--changeset_x\r\nHTTP/1.1 500 No\r\n",
        "count": number,
        "big": EntityProperty(2**40 + number, EdmType.INT64),
        "at": datetime(2026, 1, 1, 2, 3, 4, 567000, tzinfo=UTC),
        "flag": True,
        "ratio": 1.5,
        "nothing": None,
    }


@pytest.fixture
def tables(storage_connection: str) -> Iterator[tuple[TableClient, TableClient]]:
    with TableServiceClient.from_connection_string(storage_connection) as service:
        yield service.create_table("lean"), service.create_table("sdk")


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs of the `$batch` requests sent."""
    sent: list[str] = []
    original = RequestsTransport.send

    def send(self: RequestsTransport, request: Any, **kwargs: Any) -> Any:
        if str(request.url).endswith("$batch"):
            sent.append(str(request.url))
        return original(self, request, **kwargs)

    monkeypatch.setattr(RequestsTransport, "send", send)
    return sent


def _rows(table: TableClient) -> list[dict[str, Any]]:
    return sorted((dict(e) for e in table.list_entities()), key=lambda e: str(e["RowKey"]))


def test_a_transaction_writes_what_the_sdk_writes_in_one_request(
    tables: tuple[TableClient, TableClient], batches: list[str]
) -> None:
    lean, sdk = tables
    upserts = [
        (TransactionOperation.UPSERT, _entity(n), {"mode": UpdateMode.REPLACE}) for n in range(5)
    ]
    submit_transaction(lean, upserts)
    assert len(batches) == 1
    sdk.submit_transaction(upserts)
    assert _rows(lean) == _rows(sdk) and len(_rows(lean)) == 5
    # A merge and a create in one transaction: the merge keeps the other properties.
    mixed = [
        (TransactionOperation.UPDATE, {"PartitionKey": PARTITION, "RowKey": "r1ö", "extra": 7}),
        (TransactionOperation.CREATE, {"PartitionKey": PARTITION, "RowKey": "new", "n": 1}),
    ]
    options = {"mode": UpdateMode.MERGE}
    submit_transaction(lean, [(mixed[0][0], mixed[0][1], options), mixed[1]])
    assert len(batches) == 3  # one request each, nothing sent twice
    sdk.submit_transaction([(mixed[0][0], mixed[0][1], options), mixed[1]])
    assert _rows(lean) == _rows(sdk)
    assert lean.get_entity(PARTITION, "r1ö")["extra"] == 7


def test_a_failed_transaction_raises_the_sdk_error_and_writes_nothing(
    tables: tuple[TableClient, TableClient],
) -> None:
    lean, _ = tables
    submit_transaction(lean, [(TransactionOperation.CREATE, _entity(1))])
    with pytest.raises(TableTransactionError) as failed:
        submit_transaction(
            lean,
            [(TransactionOperation.CREATE, _entity(9)), (TransactionOperation.CREATE, _entity(1))],
        )
    # The SDK sets error_code on the error it raises; its type does not declare it.
    assert failed.value.error_code == TableErrorCode.ENTITY_ALREADY_EXISTS  # type: ignore[attr-defined]
    assert [e["RowKey"] for e in _rows(lean)] == ["r1ö"]
