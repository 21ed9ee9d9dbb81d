"""One simulator per test module, reset before every test; clients go through HTTPS and msal.

Helpers are fixtures returning callables, so test modules import nothing from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msal
import pytest

from acctsync.sim.harness import SimulatorHandle, start_simulator

API = "/api/data/v9.2/"
MakeApp = Callable[..., msal.ConfidentialClientApplication]
Follow = Callable[..., tuple[list[list[dict[str, Any]]], dict[str, Any]]]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorHandle]:
    with start_simulator(state_dir=tmp_path_factory.mktemp("sim")) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        handle: SimulatorHandle = request.getfixturevalue("sim")
        handle.control.reset()


@pytest.fixture
def make_app(sim: SimulatorHandle) -> MakeApp:
    """A new msal confidential client (empty token cache) for the simulator's app."""

    def make(*, secret: str | None = None, tenant: str | None = None) -> Any:
        env = sim.env
        return msal.ConfidentialClientApplication(
            env["DATAVERSE_CLIENT_ID"],
            client_credential=env["DATAVERSE_CLIENT_SECRET"] if secret is None else secret,
            authority=f"{env['DATAVERSE_AUTHORITY_HOST']}/{tenant or env['DATAVERSE_TENANT_ID']}",
            instance_discovery=False,
            http_client=httpx.Client(verify=sim.ssl_context()),
        )

    return make


@pytest.fixture
def app_token(sim: SimulatorHandle, make_app: MakeApp) -> str:
    result = make_app().acquire_token_for_client([f"{sim.dataverse_url}/.default"])
    assert "access_token" in result, result
    token: str = result["access_token"]
    return token


def _client(sim: SimulatorHandle, token: str | None) -> httpx.Client:
    headers = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        base_url=sim.dataverse_url + API, verify=sim.ssl_context(), headers=headers, timeout=30
    )


@pytest.fixture
def api(sim: SimulatorHandle, app_token: str) -> Iterator[httpx.Client]:
    """A Web API client signed in as the application user (client credentials)."""
    with _client(sim, app_token) as client:
        yield client


@pytest.fixture
def anonymous(sim: SimulatorHandle) -> Iterator[httpx.Client]:
    """A Web API client that sends no Authorization header."""
    with _client(sim, None) as client:
        yield client


@pytest.fixture
def follow() -> Follow:
    """Follow nextLinks to the end: each page's rows, and the body of the last page."""

    def run(
        client: httpx.Client, url: str, prefer: str | None = None
    ) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
        pages: list[list[dict[str, Any]]] = []
        headers = {"Prefer": prefer} if prefer else {}
        while True:
            response = client.get(url, headers=headers)
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            pages.append(body["value"])
            if "@odata.nextLink" not in body:
                return pages, body
            assert "@odata.deltaLink" not in body, "deltaLink before the last page"
            url = body["@odata.nextLink"]

    return run
