"""Shared fixtures: one Azurite per test session, started from the project's npm dependency
on free ports, and a clean storage account for every test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from acctsync.azurite import Azurite, start_azurite
from acctsync.localhost import serving_api
from acctsync.ports import free_port
from acctsync.sim.harness import SimulatorHandle, start_simulator
from shared.services import Services, get_services, reset_services
from tests.utils.helpers import API_KEY, wipe_storage


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with start_azurite() as running:
        yield running


@pytest.fixture
def storage_connection(azurite: Azurite) -> str:
    """Azurite's connection string, with every table and queue removed before the test."""
    wipe_storage(azurite.connection_string)
    return azurite.connection_string


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


@pytest.fixture(scope="module")
def api_base() -> Iterator[str]:
    """The local host's API server (127.0.0.1, key required) on a free port."""
    with serving_api(API_KEY, port=free_port()) as base:
        yield base


@pytest.fixture
def api(api_base: str, services: Services) -> Iterator[httpx.Client]:
    """A client of that API with the key, for a test with its own `services`."""
    headers = {"x-functions-key": API_KEY}
    with httpx.Client(base_url=api_base, headers=headers, timeout=120) as client:
        yield client
