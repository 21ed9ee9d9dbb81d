"""The raw ceilings: the same storage and Dataverse work with nothing of acctsync in it.

- batched upserts: entities of the size acctsync writes, 64 partitions, entity-group
  transactions of 100 upserts, a few in flight (as many as it takes to keep Azurite busy);
- single upserts: one entity per request, one at a time;
- point reads: rows of a mirror table read by key, one request each, many in flight (a
  re-load compares every row Dynamics sends with the mirrored one, so this is its floor);
- paging: a bare httpx loop over the simulator's change-tracking pages.
"""

from __future__ import annotations

import itertools
import time
import uuid
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.data.tables import TableServiceClient, TransactionOperation, UpdateMode
from azure.storage.queue import QueueClient

from bench.stack import Stack
from shared.dataverse.client import include_annotations
from shared.mirror.transactions import submit_transaction
from shared.storage import BATCH_QUEUE

PARTITIONS = 64
IN_FLIGHT = 4


def entity(index: int, partition_of: str) -> dict[str, Any]:
    """An entity shaped like a mirrored contact (about the same properties and size)."""
    contact = str(uuid.UUID(int=index + 1))
    return {
        "PartitionKey": f"{zlib.crc32(partition_of.encode()) % PARTITIONS:02d}",
        "RowKey": contact,
        "version": index,
        "is_deleted": False,
        "accountid": "00000000-0000-0000-0000-00000000abcd",
        "parent_id": "00000000-0000-0000-0000-00000000abcd",
        "parent_type": "account",
        "f_fullname": "Ana Silva",
        "f_firstname": "Ana",
        "f_lastname": "Silva",
        "f_emailaddress1": f"ana.silva{index % 999}@contoso.example",
        "f_jobtitle": "Purchasing Manager",
        "f_telephone1": "+1 425 555 0101",
        "f_statecode": 0,
    }


# Times a raw transaction is sent again after its connection broke. An upsert is idempotent,
# so sending it again is safe; azure-core does not retry a POST whose response was lost.
# (Seen twice, 2026-12-02: a reset from Azurite about six minutes into a 640,000-entity run.)
RESENDS = 3


def batched_upserts(storage: str, count: int, *, table: str = "benchraw") -> float:
    """Seconds to upsert `count` entities in 100-entity transactions (raw ceiling) into the
    storage of this connection string; a transaction whose connection broke is sent again,
    and that time counts."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for index in range(count):
        item = entity(index, str(index))
        groups[item["PartitionKey"]].append(item)
    chunks = [g[i : i + 100] for g in groups.values() for i in range(0, len(g), 100)]
    # Interleave partitions, as a growing table would see them.
    chunks.sort(key=lambda c: (c[0]["version"] // 6400, c[0]["PartitionKey"]))
    with TableServiceClient.from_connection_string(storage) as service:
        client = service.create_table_if_not_exists(table)

        def submit(chunk: list[dict[str, Any]]) -> None:
            operations = [
                (TransactionOperation.UPSERT, e, {"mode": UpdateMode.REPLACE}) for e in chunk
            ]
            for attempt in range(RESENDS + 1):
                try:
                    # acctsync's own lean transaction path: a ceiling sent through the SDK's
                    # multipart code would be slower than acctsync itself, and flatter it.
                    submit_transaction(client, operations)
                    return
                except (ConnectionError, ServiceRequestError, ServiceResponseError):
                    if attempt == RESENDS:
                        raise

        started = time.perf_counter()
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(submit, chunks))
        elapsed = time.perf_counter() - started
        service.delete_table(table)
    return elapsed


def single_upserts(stack: Stack, count: int, *, table: str = "benchsingle") -> float:
    """Seconds to upsert `count` entities one request at a time."""
    with TableServiceClient.from_connection_string(stack.storage) as service:
        client = service.create_table_if_not_exists(table)
        started = time.perf_counter()
        for index in range(count):
            client.upsert_entity(entity(index, str(index)), mode=UpdateMode.REPLACE)
        elapsed = time.perf_counter() - started
        service.delete_table(table)
    return elapsed


def point_reads(stack: Stack, table: str, count: int, *, width: int = 16) -> tuple[float, int]:
    """(seconds, rows) to read up to `count` rows of `table` by key, `width` requests at a time
    (enough to keep this machine's two cores busy; acctsync's batches read 8 at a time each)."""
    with TableServiceClient.from_connection_string(stack.storage) as service:
        client = service.get_table_client(table)
        rows = client.list_entities(select=["PartitionKey", "RowKey"], results_per_page=1000)
        keys = [(str(r["PartitionKey"]), str(r["RowKey"])) for r in itertools.islice(rows, count)]
        started = time.perf_counter()
        with ThreadPoolExecutor(width) as pool:
            list(pool.map(lambda key: client.get_entity(*key), keys))
        return time.perf_counter() - started, len(keys)


def page_loop(
    stack: Stack,
    entity_set: str,
    select: str,
    *,
    messages: list[str] | None = None,
    track_changes: bool = True,
) -> tuple[float, int, int]:
    """A bare httpx loop over the change-tracking pages: (seconds, rows, requests).

    It sends what DataverseClient sends (the same Prefer headers, so the same pages), and
    nothing else: no retries, no token cache, no row handling beyond counting. With
    `messages`, it also sends those queue messages as it goes, spread evenly over the pages
    (the same bodies acctsync's planning sent), and nothing else: no packing, no checkpoint.
    `track_changes=False`: a plain query's pages, as a verify reads them.
    """
    env = stack.sim.env
    token_url = f"{env['DATAVERSE_AUTHORITY_HOST']}/{env['DATAVERSE_TENANT_ID']}/oauth2/v2.0/token"
    queue = QueueClient.from_connection_string(stack.storage, BATCH_QUEUE) if messages else None
    pending = list(messages or [])
    with httpx.Client(verify=stack.sim.ssl_context(), timeout=120) as http:
        token = http.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": env["DATAVERSE_CLIENT_ID"],
                "client_secret": env["DATAVERSE_CLIENT_SECRET"],
                "scope": f"{env['DATAVERSE_URL']}/.default",
            },
        ).json()["access_token"]
        annotations = include_annotations(formatted=True)  # what acctsync asks by default
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Prefer": ("odata.track-changes," if track_changes else "")
            + f"odata.maxpagesize=5000,{annotations}",
        }
        url: str | None = f"{env['DATAVERSE_URL']}/api/data/v9.2/{entity_set}?$select={select}"
        rows = requests = 0
        per_page = max(1, len(pending) // max(1, rows_hint(stack, entity_set) // 5000 + 1))
        started = time.perf_counter()
        while url:
            body = http.get(url, headers=headers).json()
            requests += 1
            rows += len(body["value"])
            url = body.get("@odata.nextLink")
            if queue is not None:
                share = pending if not url else pending[:per_page]
                for message in share:
                    queue.send_message(message)
                del pending[: len(share)]
            headers["Prefer"] = f"odata.maxpagesize=5000,{annotations}"
        elapsed = time.perf_counter() - started
    if queue is not None:
        queue.close()
    return elapsed, rows, requests


def rows_hint(stack: Stack, entity_set: str) -> int:
    """How many rows the simulator holds for an entity set (to spread messages over pages)."""
    stats = stack.sim.control.stats()
    return int(stats["accounts" if entity_set == "accounts" else "contacts"])
