"""Shared fixtures: one Azurite per test session, started from the project's npm dependency
on free ports, and a clean storage account for every test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from acctsync.azurite import Azurite, start_azurite
from acctsync.sim.harness import SimulatorHandle, start_simulator
from shared.services import Services, get_services, reset_services


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


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorHandle]:
    """One Dataverse simulator (HTTPS, local CA, Entra-ID-like authority) per session."""
    with start_simulator() as running:
        yield running


@pytest.fixture
def services(
    simulator: SimulatorHandle, storage_connection: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Services]:
    """acctsync pointed at a reset simulator and an empty Azurite, as the Functions host
    would configure it: through the environment."""
    simulator.control.reset()
    simulator.control.clear_faults()
    for name, value in simulator.env.items():
        if name.startswith("DATAVERSE_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)
    monkeypatch.setenv("SYNC_INTERVAL_MINUTES", "0")
    monkeypatch.setenv("ACTIVITY_CONTACT_LIMIT", "5000")
    reset_services()
    yield get_services()
    reset_services()
