"""Entity-group transactions without azure-core's multipart machinery on the way that succeeds.

azure-data-tables builds a transaction's body and reads its answer with the standard
library's `email` package (a generator for each operation, a parser and a header registry for
each answer): in a first load that was about 60 % of the process's CPU, more than the entities
themselves (issue 26's profile). Here the SDK still builds each operation's request (URL,
headers, the entity's JSON), and only the envelope is written as bytes and the answer's status
lines read. Anything but a clear success (a part that failed, an answer we do not recognise)
sends the transaction again through the SDK, which raises its own errors: a transaction is all
or nothing, so the failed one changed nothing, and callers keep the SDK's exceptions
(TableTransactionError with its error code, RequestTooLargeError, ...).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from azure.core.rest import HttpRequest
from azure.data.tables import TableClient
from azure.data.tables._table_batch import TableBatchOperations

# Each part of the answer starts with its status line.
_STATUS_LINE = re.compile(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ")
_BATCH_HEADERS = {
    "DataServiceVersion": "3.0",
    "MaxDataServiceVersion": "3.0;NetFx",
    "Accept": "application/json",
}


def submit_transaction(table: TableClient, operations: Iterable[Any]) -> None:
    """Submit one entity-group transaction (`operations` as TableClient.submit_transaction
    takes them); raises what the SDK raises when it fails."""
    operations = list(operations)
    if _submit_lean(table, operations) is not True:
        table.submit_transaction(operations)


def _submit_lean(table: TableClient, operations: list[Any]) -> bool:
    """Whether every operation succeeded (False: nothing was written, or we cannot tell)."""
    generated = table._client  # the SDK's own pipeline: credentials, retries, its headers
    batch = TableBatchOperations(
        config=generated._config,
        endpoint=f"{table.scheme}://{table._primary_hostname}",
        table_name=table.table_name,
        is_cosmos_endpoint=table._cosmos_endpoint,
    )
    for operation in operations:
        batch.add_operation(operation)
    boundary = f"batch_{uuid.uuid4()}"
    request = HttpRequest(
        "POST",
        f"{table.scheme}://{table._primary_hostname}/$batch",
        headers={
            **_BATCH_HEADERS,
            "x-ms-version": table.api_version,
            "Content-Type": f"multipart/mixed; boundary={boundary}",
        },
        content=multipart_body(batch.requests, boundary=boundary),
    )
    # Streamed, as the SDK asks it: read whole, the pipeline would try to decode it as JSON.
    response = generated.send_request(request, stream=True)
    answer = response.read()
    if response.status_code != 202:
        return False
    statuses = [int(code) for code in _STATUS_LINE.findall(answer)]
    return len(statuses) == len(operations) and all(200 <= s < 300 for s in statuses)


def multipart_body(requests: list[HttpRequest], *, boundary: str) -> bytes:
    """The body of a `$batch` request holding `requests` as one changeset (OData 3 batch
    format, as the Table service documents it)."""
    changeset = f"changeset_{uuid.uuid4()}"
    out = [f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for number, request in enumerate(requests):
        content = request.content
        body = content.encode() if isinstance(content, str) else bytes(content or b"")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        if body:
            headers["Content-Length"] = str(len(body))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        out.append(
            (
                f"--{changeset}\r\nContent-Type: application/http\r\n"
                f"Content-Transfer-Encoding: binary\r\nContent-ID: {number}\r\n\r\n"
                f"{request.method} {request.url} HTTP/1.1\r\n{head}\r\n"
            ).encode()
            + body
            + b"\r\n"
        )
    out.append(f"--{changeset}--\r\n\r\n--{boundary}--\r\n".encode())
    return b"".join(out)
