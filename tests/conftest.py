"""Shared fixtures: one Azurite per test session, started from the project's npm dependency
on free ports, and a clean storage account for every test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from acctsync.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with start_azurite() as running:
        yield running


@pytest.fixture
def storage_connection(azurite: Azurite) -> Iterator[str]:
    """Azurite's connection string, with every table and queue removed before the test."""
    connection = azurite.connection_string
    with TableServiceClient.from_connection_string(connection) as tables:
        for table in tables.list_tables():
            tables.delete_table(table.name)
    with QueueServiceClient.from_connection_string(connection) as queues:
        for queue in queues.list_queues():
            queues.delete_queue(queue.name)
    return connection
