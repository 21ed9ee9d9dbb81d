"""A page of one partition without azure-core's deserializer on the way that succeeds.

azure-data-tables turns every entity of a query's answer into a TableEntity through its
generic deserializer and an EDM conversion per property: in a verify of 20,000 contacts that was
more than half of the process's CPU, more than the rows' digests (issue 23's profile). A reader
that needs a few plain properties asks for them without metadata and decodes the page with
orjson: values come as JSON has them (an Int64 as its decimal text, a DateTime as ISO text).
The request still goes through the SDK's own pipeline (credentials, retries, its headers); any
answer but 200 is asked again through the SDK, which raises its own errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode

import orjson
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from shared.mirror.service_pages import service_page

# The keys of the next page, as the SDK's continuation token holds them.
Token = dict[str, str] | None

_QUERY_HEADERS = {
    "Accept": "application/json;odata=nometadata",
    "DataServiceVersion": "3.0",
    "MaxDataServiceVersion": "3.0;NetFx",
}


@dataclass(frozen=True)
class PartitionPage:
    rows: list[dict[str, Any]]
    next: Token  # None: the partition has been read


def partition_page(
    table: TableClient, partition: str, *, select: list[str], top: int, token: Token = None
) -> PartitionPage:
    """One page of `partition` (from `token`, or its start) with the `select`ed properties."""
    query = {
        "$filter": "PartitionKey eq '{}'".format(partition.replace("'", "''")),
        "$select": ",".join(select),
        "$top": str(top),
    }
    if token:
        query |= {"NextPartitionKey": token["PartitionKey"], "NextRowKey": token["RowKey"]}
    request = HttpRequest(
        "GET",
        f"{table.scheme}://{table._primary_hostname}/{quote(table.table_name)}()"
        f"?{urlencode(query, quote_via=quote)}",
        headers={**_QUERY_HEADERS, "x-ms-version": table.api_version},
    )
    # Streamed, as the SDK asks it: read whole, the pipeline would decode it as JSON itself.
    response = table._client.send_request(request, stream=True)
    body = response.read()
    if response.status_code != 200:
        return _through_the_sdk(table, partition, select=select, top=top, token=token)
    following = {
        "PartitionKey": response.headers.get("x-ms-continuation-NextPartitionKey"),
        "RowKey": response.headers.get("x-ms-continuation-NextRowKey"),
    }
    rows: list[dict[str, Any]] = orjson.loads(body)["value"]
    if following["PartitionKey"] or following["RowKey"]:
        return PartitionPage(rows, {k: v or "" for k, v in following.items()})
    return PartitionPage(rows, None)


def _through_the_sdk(
    table: TableClient, partition: str, *, select: list[str], top: int, token: Token
) -> PartitionPage:
    """The same page read by the SDK: its typed errors when the service refuses it."""
    # The SDK's token is the dict of the next keys, though typed as text.
    rows, following = service_page(
        table.query_entities(
            "PartitionKey eq @p", parameters={"p": partition}, select=select, results_per_page=top
        ).by_page(continuation_token=cast(Any, token))
    )
    return PartitionPage([dict(entity) for entity in rows], following)
