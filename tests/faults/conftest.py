"""Fixtures of the fault suite: the clean twin (a second Azurite), figures, environments, and
the oracle every test that builds a mirror ends with: a verify that finds no drift."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from acctsync.azurite import Azurite, start_azurite
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services, get_services
from tests.utils.faults import SOAK, Figures, Oracle, services_for
from tests.utils.helpers import wipe_storage


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The soak (ACCTSYNC_SOAK=1) runs the same claims on ~10x the data: give it time."""
    if SOAK:
        for item in items:
            if "tests/faults" in str(item.path).replace("\\", "/"):
                item.add_marker(pytest.mark.timeout(3600))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "no_oracle(reason): the test ends, on purpose, with a mirror no recovery can make "
        "equal to Dynamics, so it is not verified; the reason says why",
    )


CALL_FAILED = pytest.StashKey[bool]()  # whether the test's own body failed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
def oracle(request: pytest.FixtureRequest) -> Iterator[Oracle]:
    """Set up after `services` (so torn down before it, with its settings still in place);
    runs the verify only when the test itself passed, so a failure is not reported twice."""
    if "services" not in request.fixturenames:
        yield Oracle()
        return
    request.getfixturevalue("services")
    checked = Oracle(request.getfixturevalue("simulator"))
    yield checked
    marker = request.node.get_closest_marker("no_oracle")
    assert marker is None or marker.args, "@pytest.mark.no_oracle needs its reason"
    if checked.done or marker is not None or request.node.stash.get(CALL_FAILED, True):
        return
    # The process's services as the test left them: a test that changed a setting rebuilt
    # them (reset_services), which closed the ones the fixture handed out.
    checked.verify(get_services())


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
