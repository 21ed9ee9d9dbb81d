"""The Entra ID stand-in through msal, TLS, and how the Web API treats bearer tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest

from acctsync.sim.harness import SimulatorHandle, start_simulator


def require_user_realm(sim: SimulatorHandle) -> None:
    """msal asks https://localhost:443/common/userrealm/... before a password grant."""
    if sim.env["SIM_USERREALM_443"] == "1":
        return
    # Another simulator holds port 443; it answers for us too, as all share one CA.
    try:
        httpx.get(
            f"https://localhost/common/userrealm/{sim.env['SIM_USERNAME']}",
            verify=sim.ssl_context(),
        ).raise_for_status()
    except httpx.HTTPError as error:
        pytest.skip(f"127.0.0.1:443 could not be bound and nothing usable answers there: {error}")


def test_discovery_is_shaped_like_entra(sim: SimulatorHandle) -> None:
    env = sim.env
    tenant = env["DATAVERSE_TENANT_ID"]
    url = f"{env['DATAVERSE_AUTHORITY_HOST']}/{tenant}/v2.0/.well-known/openid-configuration"
    config = httpx.get(url, verify=sim.ssl_context()).json()
    base = f"{env['DATAVERSE_AUTHORITY_HOST']}/{tenant}"
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert config["issuer"] == f"{base}/v2.0"
    assert "client_secret_post" in config["token_endpoint_auth_methods_supported"]

    unknown = httpx.get(
        f"{env['DATAVERSE_AUTHORITY_HOST']}/nosuchtenant/v2.0/.well-known/openid-configuration",
        verify=sim.ssl_context(),
    )
    assert unknown.status_code == 400
    assert unknown.json()["error_codes"] == [90002]


def test_client_credentials_then_who_am_i(
    sim: SimulatorHandle, make_app: Callable[..., Any], api: httpx.Client
) -> None:
    app = make_app()
    scopes = [f"{sim.dataverse_url}/.default"]
    first = app.acquire_token_for_client(scopes)
    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == 3600
    assert app.acquire_token_for_client(scopes)["token_source"] == "cache"

    response = api.get("WhoAmI")
    assert response.status_code == 200
    assert response.headers["x-ms-dop-hint"] == "4"
    assert response.headers["odata-version"] == "4.0"
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    assert body["UserId"] == sim.env["SIM_APP_USER_ID"]
    assert set(body) == {"@odata.context", "BusinessUnitId", "UserId", "OrganizationId"}
    assert api.get("WhoAmI()").json()["UserId"] == body["UserId"]


def test_wrong_secret_and_wrong_scope_are_refused_entra_style(
    sim: SimulatorHandle, make_app: Callable[..., Any]
) -> None:
    result = make_app(secret="not-the-secret").acquire_token_for_client(
        [f"{sim.dataverse_url}/.default"]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"trace_id", "correlation_id", "timestamp"} <= set(result)

    wrong_scope = make_app().acquire_token_for_client([f"{sim.dataverse_url}/user_impersonation"])
    assert wrong_scope["error"] == "invalid_scope"
    assert wrong_scope["error_codes"] == [1002012]

    with pytest.raises(ValueError, match="nosuchtenant"):
        make_app(tenant="nosuchtenant").acquire_token_for_client([f"{sim.dataverse_url}/.default"])


def test_username_password_then_silent(sim: SimulatorHandle, make_app: Callable[..., Any]) -> None:
    require_user_realm(sim)
    app = make_app()
    scopes = [f"{sim.dataverse_url}/.default"]
    username, password = sim.env["SIM_USERNAME"], sim.env["SIM_PASSWORD"]

    wrong = app.acquire_token_by_username_password(username, "wrong password", scopes)
    assert wrong["error"] == "invalid_grant"
    assert wrong["error_codes"] == [50126]

    result = app.acquire_token_by_username_password(username, password, scopes)
    assert "access_token" in result, result
    assert {"refresh_token", "id_token", "client_info"} <= set(result)
    accounts = app.get_accounts(username=username)
    assert len(accounts) == 1
    silent = app.acquire_token_silent(scopes, account=accounts[0])
    assert silent is not None
    assert silent["token_source"] == "cache"
    assert silent["access_token"] == result["access_token"]

    user = httpx.get(
        f"{sim.dataverse_url}/api/data/v9.2/WhoAmI",
        headers={"Authorization": f"Bearer {silent['access_token']}"},
        verify=sim.ssl_context(),
    ).json()
    assert user["UserId"] == sim.env["SIM_SYNC_USER_ID"] != sim.env["SIM_APP_USER_ID"]
    if sim.env["SIM_USERREALM_443"] == "1":
        realm = [r for r in sim.control.requests() if r["listener"] == "userrealm"]
        assert realm
        assert {r["path"] for r in realm} == {f"/common/userrealm/{username}"}


def test_refresh_token_grant_gives_new_tokens(
    sim: SimulatorHandle, make_app: Callable[..., Any]
) -> None:
    require_user_realm(sim)
    app = make_app()
    scopes = [f"{sim.dataverse_url}/.default"]
    first = app.acquire_token_by_username_password(
        sim.env["SIM_USERNAME"], sim.env["SIM_PASSWORD"], scopes
    )
    refreshed = app.acquire_token_by_refresh_token(first["refresh_token"], scopes)
    assert refreshed["access_token"] != first["access_token"]
    bad = app.acquire_token_by_refresh_token("1.Anot-a-refresh-token", scopes)
    assert bad["error"] == "invalid_grant"


def test_missing_garbage_and_expired_tokens_get_401(
    sim: SimulatorHandle, api: httpx.Client, anonymous: httpx.Client
) -> None:
    missing = anonymous.get("WhoAmI")
    assert missing.status_code == 401
    assert "message" in missing.json()["error"]
    challenge = missing.headers["www-authenticate"]
    assert challenge.startswith("Bearer authorization_uri=")
    assert sim.env["DATAVERSE_TENANT_ID"] in challenge

    garbage = anonymous.get("WhoAmI", headers={"Authorization": "Bearer eyJnot.a.token"})
    assert garbage.status_code == 401

    assert api.get("WhoAmI").status_code == 200
    sim.control.expire_tokens()
    expired = api.get("WhoAmI")
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_token_for_another_audience_gets_401(
    sim: SimulatorHandle, make_app: Callable[..., Any]
) -> None:
    # A token for another resource (Microsoft Graph) is a valid token with the wrong audience.
    graph = make_app().acquire_token_for_client(["https://graph.microsoft.com/.default"])
    response = httpx.get(
        f"{sim.dataverse_url}/api/data/v9.2/WhoAmI",
        headers={"Authorization": f"Bearer {graph['access_token']}"},
        verify=sim.ssl_context(),
    )
    assert response.status_code == 401
    assert "audience" in response.json()["error"]["message"]


def test_tls_verifies_with_the_ca_only(sim: SimulatorHandle) -> None:
    for url in (sim.dataverse_url, sim.env["DATAVERSE_AUTHORITY_HOST"]):
        assert httpx.get(f"{url}/nowhere", verify=sim.ssl_context()).status_code in (401, 404)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/nowhere", verify=True)


def test_token_lifetime_flag(tmp_path: Path) -> None:
    # Long enough that a busy CI machine cannot lose it between issue and first use.
    with start_simulator(token_lifetime_s=3, state_dir=tmp_path) as short:
        env = short.env
        app = msal.ConfidentialClientApplication(
            env["DATAVERSE_CLIENT_ID"],
            client_credential=env["DATAVERSE_CLIENT_SECRET"],
            authority=f"{env['DATAVERSE_AUTHORITY_HOST']}/{env['DATAVERSE_TENANT_ID']}",
            instance_discovery=False,
            http_client=httpx.Client(verify=short.ssl_context()),
        )
        result = app.acquire_token_for_client([f"{short.dataverse_url}/.default"])
        assert result["expires_in"] == 3
        headers = {"Authorization": f"Bearer {result['access_token']}"}
        url = f"{short.dataverse_url}/api/data/v9.2/WhoAmI"
        assert httpx.get(url, headers=headers, verify=short.ssl_context()).status_code == 200
        time.sleep(3.1)
        assert httpx.get(url, headers=headers, verify=short.ssl_context()).status_code == 401


def test_mfa_required_refuses_the_password_grant(
    sim: SimulatorHandle, make_app: Callable[..., Any]
) -> None:
    require_user_realm(sim)
    app = make_app()
    scopes = [f"{sim.dataverse_url}/.default"]
    username, password = sim.env["SIM_USERNAME"], sim.env["SIM_PASSWORD"]
    before = app.acquire_token_by_username_password(username, password, scopes)
    assert "access_token" in before, before

    sim.control.require_mfa()
    refused = app.acquire_token_by_username_password(username, password, scopes)
    assert refused["error"] == "invalid_grant"
    assert refused["error_codes"] == [50076]
    assert refused["suberror"] == "basic_action"
    assert refused["error_description"].startswith(
        "AADSTS50076: Due to a configuration change made by your administrator, or because you "
        "moved to a new location, you must use multi-factor authentication to access "
        "'00000007-0000-0000-c000-000000000000'.\r\nTrace ID: "
    )
    assert {"trace_id", "correlation_id", "timestamp", "error_uri"} <= set(refused)
    # The first factor is checked first; a refresh token got before MFA no longer works.
    wrong = app.acquire_token_by_username_password(username, "wrong password", scopes)
    assert wrong["error_codes"] == [50126]
    refreshed = app.acquire_token_by_refresh_token(before["refresh_token"], scopes)
    assert refreshed["error_codes"] == [50076]
    # The application signs in without a user, so MFA does not concern it.
    assert "access_token" in make_app().acquire_token_for_client(scopes)

    # msal keeps an invalid_grant answer for a minute, so each later try uses a new client.
    sim.control.require_mfa(False)
    signed_in = make_app().acquire_token_by_username_password(username, password, scopes)
    assert "access_token" in signed_in
    sim.control.require_mfa()
    sim.control.reset()
    signed_in = make_app().acquire_token_by_username_password(username, password, scopes)
    assert "access_token" in signed_in


def test_wrong_tenant_and_wrong_secret_through_msal(
    sim: SimulatorHandle, make_app: Callable[..., Any]
) -> None:
    scopes = [f"{sim.dataverse_url}/.default"]
    # msal reads the tenant's discovery document first; Entra's AADSTS90002 is what it got.
    with pytest.raises(ValueError, match="nosuchtenant") as failure:
        make_app(tenant="nosuchtenant").acquire_token_for_client(scopes)
    assert "AADSTS90002: Tenant 'nosuchtenant' not found." in str(failure.value.__context__)
    # A client that skips discovery meets the same code at the token endpoint.
    direct = httpx.post(
        f"{sim.env['DATAVERSE_AUTHORITY_HOST']}/nosuchtenant/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sim.env["DATAVERSE_CLIENT_ID"],
            "client_secret": sim.env["DATAVERSE_CLIENT_SECRET"],
            "scope": scopes[0],
        },
        verify=sim.ssl_context(),
    )
    assert direct.status_code == 400
    assert (direct.json()["error"], direct.json()["error_codes"]) == ("invalid_request", [90002])

    require_user_realm(sim)
    wrong_secret = make_app(secret="not-the-secret").acquire_token_by_username_password(
        sim.env["SIM_USERNAME"], sim.env["SIM_PASSWORD"], scopes
    )
    assert wrong_secret["error"] == "invalid_client"
    assert wrong_secret["error_codes"] == [7000215]
    assert wrong_secret["error_description"].startswith(
        "AADSTS7000215: Invalid client secret provided."
    )
