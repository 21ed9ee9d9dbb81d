"""The control surface: its key, its separation from the Web API, bulk writes, the log."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest

from acctsync.sim.harness import SimulatorError, SimulatorHandle, start_simulator


def test_control_needs_its_key(sim: SimulatorHandle, app_token: str) -> None:
    url = f"{sim.env['SIM_CONTROL_URL']}/stats"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"x-sim-control-key": "wrong"}).status_code == 401
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {app_token}"})
    assert bearer.status_code == 401
    assert httpx.get(url, headers={"x-sim-control-key": sim.env["SIM_CONTROL_KEY"]}).is_success


def test_control_is_not_on_the_web_api_port(sim: SimulatorHandle, api: httpx.Client) -> None:
    key = {"x-sim-control-key": sim.env["SIM_CONTROL_KEY"]}
    for path in ("/stats", "/api/data/v9.2/stats", "/api/data/v9.2/../../stats"):
        assert api.get(sim.dataverse_url + path, headers=key).status_code == 404
    assert api.post(f"{sim.dataverse_url}/reset", headers=key).status_code == 404
    with pytest.raises(httpx.ConnectError):
        httpx.get(
            sim.env["SIM_CONTROL_URL"].replace("http:", "https:") + "/stats",
            verify=sim.ssl_context(),
        )


def test_rows_are_validated(sim: SimulatorHandle) -> None:
    with pytest.raises(SimulatorError, match="no writable column 'colour'"):
        sim.control.create_accounts([{"name": "x", "colour": "red"}])
    with pytest.raises(SimulatorError, match="maximum of 160"):
        sim.control.create_accounts([{"name": "x" * 161}])
    with pytest.raises(SimulatorError, match="Does Not Exist"):
        sim.control.create_contacts(
            [{"lastname": "x", "parentcustomerid": "00000000-0000-0000-0000-000000000001"}]
        )
    [account_id] = sim.control.create_accounts(
        [{"accountid": "00000000-0000-0000-0000-0000000000aa", "name": "Own id"}]
    )
    assert account_id == "00000000-0000-0000-0000-0000000000aa"
    before = sim.control.get_account(account_id)
    after = sim.control.update_account(account_id, {"statecode": 1})
    assert after["statuscode"] == 2
    assert after["versionnumber"] > before["versionnumber"]
    with pytest.raises(SimulatorError, match="404"):
        sim.control.update_account("00000000-0000-0000-0000-000000000bad", {"name": "x"})


def test_bulk_create_of_100000_contacts(sim: SimulatorHandle) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Huge"}])
    rows = [
        {"firstname": "F", "lastname": str(i), "parentcustomerid": account_id}
        for i in range(100_000)
    ]
    started = time.monotonic()
    ids = sim.control.create_contacts(rows)
    assert len(set(ids)) == 100_000
    assert time.monotonic() - started < 15
    stats = sim.control.stats()
    assert stats["contacts"] == 100_000
    assert stats["largest_accounts"][0] == {"accountid": account_id, "contacts": 100_000}


def test_request_log_covers_web_api_and_authority(
    sim: SimulatorHandle, make_app: Callable[..., Any], api: httpx.Client
) -> None:
    sim.control.requests(clear=True)
    make_app().acquire_token_for_client([f"{sim.dataverse_url}/.default"])
    api.get("accounts", params={"$select": "name"})
    log = sim.control.requests(clear=True)
    assert [(r["listener"], r["method"], r["status"]) for r in log] == [
        ("authority", "GET", 200),
        ("authority", "POST", 200),
        ("webapi", "GET", 200),
    ]
    assert log[2]["path"] == "/api/data/v9.2/accounts"
    assert log[2]["query"] == "%24select=name"
    assert log[2]["principal"] == "app"
    assert log[2]["time"].endswith("Z")
    assert sim.control.requests() == []


def test_demo_churn_changes_rows_and_sigterm_exits_cleanly(
    tmp_path: Path, follow: Callable[..., Any]
) -> None:
    extra = ["--demo-churn", "--churn-interval", "0.2"]
    with start_simulator(accounts=20, contacts=60, extra_args=extra, state_dir=tmp_path) as churn:
        env = churn.env
        app = msal.ConfidentialClientApplication(
            env["DATAVERSE_CLIENT_ID"],
            client_credential=env["DATAVERSE_CLIENT_SECRET"],
            authority=f"{env['DATAVERSE_AUTHORITY_HOST']}/{env['DATAVERSE_TENANT_ID']}",
            instance_discovery=False,
            http_client=httpx.Client(verify=churn.ssl_context()),
        )
        token = app.acquire_token_for_client([f"{churn.dataverse_url}/.default"])["access_token"]
        with httpx.Client(
            base_url=f"{churn.dataverse_url}/api/data/v9.2/",
            verify=churn.ssl_context(),
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            _, last = follow(client, "accounts?$select=name", "odata.track-changes")
            time.sleep(0.7)
            pages, _ = follow(client, last["@odata.deltaLink"])
            assert any(pages)
    assert churn.process.returncode == 0


def test_reset_restores_every_setting(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.delete_column("new_synctomkto")
    sim.control.set_change_tracking("contact", False)
    sim.control.set_privilege("app", "prvReadContact", None)
    sim.control.require_mfa()
    sim.control.reset()
    names = {
        a["LogicalName"]
        for a in api.get(
            "EntityDefinitions(LogicalName='account')/Attributes",
            params={"$select": "LogicalName"},
        ).json()["value"]
    }
    assert "new_synctomkto" in names
    contact = api.get(
        "EntityDefinitions(LogicalName='contact')", params={"$select": "ChangeTrackingEnabled"}
    ).json()
    assert contact["ChangeTrackingEnabled"] is True
    tracked = api.get(
        "contacts", params={"$select": "fullname"}, headers={"Prefer": "odata.track-changes"}
    )
    assert tracked.status_code == 200
    assert "@odata.deltaLink" in tracked.json()
    token = httpx.post(
        f"{sim.env['DATAVERSE_AUTHORITY_HOST']}/{sim.env['DATAVERSE_TENANT_ID']}/oauth2/v2.0/token",
        data={
            "grant_type": "password",
            "client_id": sim.env["DATAVERSE_CLIENT_ID"],
            "client_secret": sim.env["DATAVERSE_CLIENT_SECRET"],
            "username": sim.env["SIM_USERNAME"],
            "password": sim.env["SIM_PASSWORD"],
            "scope": f"{sim.dataverse_url}/.default",
        },
        verify=sim.ssl_context(),
    )
    assert token.status_code == 200, token.text
