"""A page of one partition read without the SDK's deserializer (shared/mirror/queries.py): the
same rows and values as the SDK reads, page after page from its continuation, and the SDK's
own errors when the service refuses the query (issue 23: the SDK's deserializer was most of a
verify's CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient, TableServiceClient

from shared.mirror.queries import Token, partition_page
from shared.mirror.writes import upsert_all

PARTITION = "p'1 ü"  # a quote (doubled in the filter) and a non-ASCII character
SELECT = ["RowKey", "version", "is_deleted", "accountid"]


@pytest.fixture
def table(storage_connection: str) -> Iterator[TableClient]:
    with TableServiceClient.from_connection_string(storage_connection) as service:
        created = service.create_table("partitionquery")
        yield created
        service.delete_table("partitionquery")


def _pages(table: TableClient, partition: str, top: int) -> list[list[dict[str, Any]]]:
    pages, token = [], None
    while True:
        page = partition_page(table, partition, select=SELECT, top=top, token=token)
        pages.append(page.rows)
        if page.next is None:
            return pages
        token = page.next


def test_pages_of_a_partition_hold_its_rows_once_in_key_order_with_their_values(
    table: TableClient,
) -> None:
    rows: list[dict[str, Any]] = [
        {
            "PartitionKey": PARTITION,
            "RowKey": f"r{n:03d}ö",
            "version": EntityProperty(2**40 + n, EdmType.INT64),
            "is_deleted": n % 3 == 0,
            "accountid": f"a{n}" if n % 2 else None,
            "other": "not selected",
        }
        for n in range(25)
    ]
    neighbour = [{**rows[0], "PartitionKey": "p'2"}]
    upsert_all(table, rows + neighbour)

    pages = _pages(table, PARTITION, top=10)
    assert [len(p) for p in pages] == [10, 10, 5]
    read = [row for page in pages for row in page]
    assert [r["RowKey"] for r in read] == [r["RowKey"] for r in rows]
    for got, put in zip(read, rows, strict=True):
        assert "other" not in got and "PartitionKey" not in got
        # Plain JSON values: an Int64 as its decimal text, a missing property left out.
        assert int(got["version"]) == put["version"].value
        assert got["is_deleted"] is put["is_deleted"]
        assert got.get("accountid") == put["accountid"]
    assert _pages(table, "empty", top=10) == [[]]


def test_a_token_from_the_sdk_goes_on_where_it_stopped(table: TableClient) -> None:
    upsert_all(table, [{"PartitionKey": "p", "RowKey": f"r{n:02d}"} for n in range(7)])
    pager: Any = table.query_entities(
        "PartitionKey eq 'p'", select=SELECT, results_per_page=3
    ).by_page()
    next(pager)
    token: Token = pager.continuation_token
    page = partition_page(table, "p", select=SELECT, top=10, token=token)
    assert [r["RowKey"] for r in page.rows] == ["r03", "r04", "r05", "r06"]
    assert page.next is None


def test_a_missing_table_raises_the_sdks_own_error(storage_connection: str) -> None:
    with TableServiceClient.from_connection_string(storage_connection) as service:
        missing = service.get_table_client("nosuchtable")
        with pytest.raises(ResourceNotFoundError):
            partition_page(missing, "p", select=SELECT, top=10)
