"""Table, queue and blob clients built from the storage settings (connection string or
identity).

The queue trigger decodes base64 by default (host.json `messageEncoding`), while the queue
SDK sends raw text unless told otherwise; both sides use base64 here so a message the cycle
sends is one the trigger can read.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import requests
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    QueueClient,
    QueueServiceClient,
    TextBase64EncodePolicy,
)
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from shared.mirror.writes import IO_THREADS

# Re-exported: the queue names live apart so the queue trigger can name its queue without
# loading the storage SDKs; everything else finds them here with the tables.
from shared.queues import BATCH_QUEUE as BATCH_QUEUE
from shared.queues import POISON_QUEUE as POISON_QUEUE
from shared.settings import StorageSettings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import ContainerClient

STATE_TABLE = "acctsyncstate"
ACCOUNTS_TABLE = "acctsyncaccounts"
CONTACTS_TABLE = "acctsynccontacts"
MEMBERS_TABLE = "acctsyncmembers"
ACTIVITIES_TABLE = "acctsyncactivities"
ERRORS_TABLE = "acctsyncerrors"
FEED_TABLE = "acctsyncfeed"
SEARCH_TABLE = "acctsyncsearch"
TABLES = (
    STATE_TABLE,
    ACCOUNTS_TABLE,
    CONTACTS_TABLE,
    MEMBERS_TABLE,
    ACTIVITIES_TABLE,
    ERRORS_TABLE,
    FEED_TABLE,
    SEARCH_TABLE,
)
QUEUES = (BATCH_QUEUE, POISON_QUEUE)
# Batches too large for a queue message (claim checks), one folder per cycle.
BATCH_CONTAINER = "acctsync-batches"
# Connections a storage client keeps for reuse: one for each thread that can send through it
# at once, else urllib3 closes the extra ones after each request and logs "Connection pool is
# full" for every one (requests' default keeps 10). Those threads: the shared I/O pool, the
# API's request threads (anyio's default of 40) and a few of the host's own (the heartbeat and
# its page reader, the queue workers).
POOL_CONNECTIONS = IO_THREADS + 40 + 8


class Storage:
    """One storage account: cached table and queue clients, tables and queues created once."""

    def __init__(self, settings: StorageSettings):
        self._settings = settings
        self._lock = threading.Lock()
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, QueueClient] = {}
        self._containers: dict[str, ContainerClient] = {}
        self._credential: TokenCredential | None = None  # identity-based storage only
        self._ready = False
        if settings.connection_string:
            self._table_service = TableServiceClient.from_connection_string(
                settings.connection_string, **_transport_options()
            )
            self._queue_service = QueueServiceClient.from_connection_string(
                settings.connection_string, **_queue_codec(), **_transport_options()
            )
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(
                managed_identity_client_id=settings.managed_identity_client_id
            )
            assert settings.table_service_uri and settings.queue_service_uri
            assert settings.blob_service_uri
            self._table_service = TableServiceClient(
                settings.table_service_uri, credential=credential, **_transport_options()
            )
            self._queue_service = QueueServiceClient(
                settings.queue_service_uri,
                credential=credential,
                **_queue_codec(),
                **_transport_options(),
            )
            self._credential = credential

    def ensure(self) -> None:
        """Create the tables and queues that do not exist yet (once per process). Not with an
        identity (Azure): infra/ creates them, and the identity holds a role on each of them
        alone, none on the account that creating one would take."""
        if self._ready or self._credential is not None:
            return
        with self._lock:
            if self._ready:
                return
            for name in TABLES:
                with contextlib.suppress(ResourceExistsError):
                    self._table_service.create_table(name)
            for name in QUEUES:
                with contextlib.suppress(ResourceExistsError):
                    self._queue_service.create_queue(name)
            self._ready = True

    def missing(self) -> list[str]:
        """The tables and queues acctsync uses that the account does not have (what
        `acctsync validate` reports), asked one by one: roles scoped to each of them do not
        let the identity list the account's."""
        tables = [n for n in TABLES if not _exists(partial(_first_page, self.table(n)))]
        queues = [n for n in QUEUES if not _exists(self.queue(n).get_queue_properties)]
        return tables + queues

    def queue_length(self, name: str) -> int:
        """Messages waiting on a queue (approximate, as the service counts them)."""
        properties = self.queue(name).get_queue_properties()
        return int(properties.approximate_message_count or 0)

    def table(self, name: str) -> TableClient:
        with self._lock:
            client = self._tables.get(name)
            if client is None:
                client = self._tables[name] = self._table_service.get_table_client(name)
            return client

    def queue(self, name: str) -> QueueClient:
        with self._lock:
            client = self._queues.get(name)
            if client is None:
                client = self._queues[name] = self._queue_service.get_queue_client(
                    name, **_queue_codec()
                )
            return client

    def container(self, name: str) -> ContainerClient:
        """A blob container, created on first use: blobs are only for the rare batch too
        large for a queue message, so neither the client nor the container is made before."""
        with self._lock:
            client = self._containers.get(name)
            if client is None:
                client = self._containers[name] = self._blob_client(name)
                if self._credential is None:  # with an identity, infra/ created it (ensure)
                    with contextlib.suppress(ResourceExistsError):
                        client.create_container()
            return client

    def _blob_client(self, name: str) -> ContainerClient:
        from azure.storage.blob import ContainerClient

        settings = self._settings
        if settings.connection_string:
            return ContainerClient.from_connection_string(
                settings.connection_string, name, **_transport_options()
            )
        assert settings.blob_service_uri
        return ContainerClient(
            settings.blob_service_uri, name, credential=self._credential, **_transport_options()
        )

    def close(self) -> None:
        for table in self._tables.values():
            table.close()
        for queue in self._queues.values():
            queue.close()
        for container in self._containers.values():
            container.close()
        self._table_service.close()
        self._queue_service.close()


class TableRepository:
    """The base of a repository: a class named after the rows it keeps in one table, whose
    methods are the only code that reads and writes them."""

    def __init__(self, table: TableClient) -> None:
        self.table = table


def entity_or_none(table: TableClient, partition: str, row: str) -> TableEntity | None:
    """The row with these keys, or None when there is none (a row not written yet is no
    error: every reader of one row has its own answer for "none")."""
    try:
        return table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None


def _first_page(table: TableClient) -> None:
    next(table.query_entities("PartitionKey eq ''", results_per_page=1).by_page(), None)


def _exists(ask: Callable[[], object]) -> bool:
    try:
        ask()
    except ResourceNotFoundError:
        return False
    return True


def _queue_codec() -> dict[str, Any]:
    return {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": BinaryBase64DecodePolicy(),
    }


def _transport_options() -> dict[str, Any]:
    """Skip requests' per-request look at the environment; what it would find is given once.

    With its default `trust_env`, requests walks the whole environment for proxy settings
    twice and looks for a netrc file on every request: about half a millisecond of CPU per
    storage request, a third of a point read. The environment does not change while the
    process runs, so the CA bundle requests would pick from it (REQUESTS_CA_BUNDLE, then
    CURL_CA_BUNDLE) is passed once instead; with a proxy or a netrc file, nothing changes.
    Each client gets a session of its own, whose pools hold POOL_CONNECTIONS connections.
    """
    netrc = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    if (
        urllib.request.getproxies()
        or os.path.exists(netrc)
        or os.path.exists(os.path.expanduser("~/_netrc"))
    ):
        return {"session": _session(trust_env=True)}
    options: dict[str, Any] = {"use_env_settings": False, "session": _session(trust_env=False)}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


def _session(*, trust_env: bool) -> requests.Session:
    """A session as azure-core's transport makes one (no retries of its own: the SDK's retry
    policy retries), with pools of POOL_CONNECTIONS. The transport that receives it owns it
    and closes it with its client. (azure-core's adapter only adds a socket block size, which
    requests 2.32 and later no longer apply.)"""
    session = requests.Session()
    session.trust_env = trust_env
    no_retries = Retry(total=False, redirect=False, raise_on_status=False)
    adapter = HTTPAdapter(max_retries=no_retries, pool_maxsize=POOL_CONNECTIONS)
    for protocol in ("http://", "https://"):
        session.mount(protocol, adapter)
    return session
