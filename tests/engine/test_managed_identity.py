"""No Dataverse secret: the Function App's managed identity signs in through azure-identity,
here against the simulator acting as the App Service identity endpoint."""

from __future__ import annotations

import pytest

from acctsync.runner import CycleFailed, run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from tests.utils.faults import services_for
from tests.utils.helpers import make_account


def identity_env(simulator: SimulatorHandle, client_id: str) -> dict[str, str]:
    env = simulator.env
    return {
        "DATAVERSE_URL": env["DATAVERSE_URL"],
        "DATAVERSE_CA_BUNDLE": env["DATAVERSE_CA_BUNDLE"],
        "DATAVERSE_CREDENTIAL": "managedidentity",
        "DATAVERSE_CLIENT_ID": client_id,
    }


def test_a_cycle_signs_in_with_the_managed_identity(
    simulator: SimulatorHandle,
    services: Services,
    storage_connection: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What App Service and Flex Consumption set on every instance.
    monkeypatch.setenv("IDENTITY_ENDPOINT", simulator.env["SIM_IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", simulator.env["SIM_IDENTITY_HEADER"])
    account_id, _ = make_account(simulator, "Contoso", 2)
    simulator.control.requests(clear=True)
    env = {"AzureWebJobsStorage": storage_connection, "SYNC_INTERVAL_MINUTES": "0"}
    identity = services_for(
        {**env, **identity_env(simulator, simulator.env["SIM_IDENTITY_CLIENT_ID"])}
    )
    try:
        summary = run_cycle_now(identity)
        assert summary.status == "succeeded" and summary.accounts_changed == 1
        assert identity.accounts.get(account_id) is not None
    finally:
        identity.close()
    log = simulator.control.requests()
    asked = [e for e in log if e["listener"] == "identity"]
    assert asked and all(e["status"] == 200 for e in asked)
    assert simulator.env["SIM_IDENTITY_CLIENT_ID"] in asked[0]["query"]
    assert not [e for e in log if e["listener"] == "authority"]  # no secret, no Entra ID call
    assert {e["principal"] for e in log if e["listener"] == "webapi"} == {"app"}

    wrong = services_for({**env, **identity_env(simulator, "11111111-1111-1111-1111-111111111111")})
    try:
        with pytest.raises(CycleFailed, match="managed identity got no Dataverse token"):
            run_cycle_now(wrong)
    finally:
        wrong.close()
