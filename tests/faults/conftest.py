"""Fixtures of the fault suite: the clean twin (a second Azurite), figures, environments."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from acctsync.azurite import Azurite, start_azurite
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from tests.faults.support import SOAK, Figures, services_for
from tests.helpers import wipe_storage


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The soak (ACCTSYNC_SOAK=1) runs the same claims on ~10x the data: give it time."""
    if SOAK:
        for item in items:
            if "tests/faults" in str(item.path).replace("\\", "/"):
                item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def figures() -> Iterator[Figures]:
    collected = Figures()
    yield collected
    collected.write()


@pytest.fixture(scope="session")
def twin_azurite() -> Iterator[Azurite]:
    with start_azurite() as running:
        yield running


@pytest.fixture
def env(services: Services) -> dict[str, str]:
    """The environment the `services` fixture set, for child processes."""
    return dict(os.environ)


@pytest.fixture
def twin(
    twin_azurite: Azurite, simulator: SimulatorHandle, services: Services
) -> Iterator[Services]:
    """acctsync on an empty second storage with the same settings: the clean run."""
    wipe_storage(twin_azurite.connection_string)
    settings = dict(os.environ)
    settings["AzureWebJobsStorage"] = twin_azurite.connection_string
    clean = services_for(settings)
    yield clean
    clean.close()
