"""The HTTP API end to end: the local host's server on 127.0.0.1, Azurite, the simulator."""

from __future__ import annotations

import httpx
import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared import __version__
from shared.services import Services, get_services, reset_services
from shared.sync.status import sync_status
from tests.utils.helpers import live_ids, make_account


def test_requests_without_the_right_key_are_refused(api_base: str, services: Services) -> None:
    for headers in ({}, {"x-functions-key": "wrong"}):
        response = httpx.get(f"{api_base}/api/sync/status", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_accounts_cannot_be_created(api: httpx.Client, services: Services) -> None:
    for method, path in (
        ("POST", "/api/accounts"),
        ("PUT", f"/api/accounts/{'1' * 8}-1111-1111-1111-{'1' * 12}"),
    ):
        response = api.request(method, path, json={"name": "New"})
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "accounts_come_from_dynamics"
    assert list(live_ids(services.accounts)) == []


def test_edit_reaches_every_contact_until_dynamics_overwrites_it(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 3)
    run_cycle_now(services)

    edit = api.patch(
        f"/api/contacts/{contacts[0]}/account", json={"fields": {"name": "Local name"}}
    )
    assert edit.status_code == 200, edit.text
    assert edit.json()["activities_logged"] == 3
    for contact_id in contacts:
        seen = api.get(f"/api/contacts/{contact_id}").json()
        assert seen["accountid"] == account_id
        assert seen["account"]["name"] == "Local name"
        (activity,) = api.get(f"/api/contacts/{contact_id}/activities").json()
        assert (activity["field"], activity["old"], activity["new"]) == (
            "name",
            "Contoso",
            "Local name",
        )
        assert "local edit" in activity["reason"].lower()
    account = api.get(f"/api/accounts/{account_id}").json()
    assert account["locally_modified"] == ["name"]
    assert account["contact_count"] == 3

    # Nothing went to Dynamics; the next Dynamics update overwrites the whole account.
    assert simulator.control.get_account(account_id)["name"] == "Contoso"
    simulator.control.update_account(account_id, {"revenue": 2000.0})
    run_cycle_now(services)
    account = api.get(f"/api/accounts/{account_id}").json()
    assert account["fields"]["name"] == "Contoso"
    assert account["fields"]["revenue"] == 2000.0
    assert account["locally_modified"] == []
    # The overwrite is itself a change of the account's fields: logged on every contact.
    logged = {
        (a["field"], a["old"], a["new"], a["source"])
        for a in api.get(f"/api/contacts/{contacts[1]}/activities").json()
    }
    assert ("name", "Local name", "Contoso", "Dynamics sync") in logged
    assert ("revenue", 1000.0, 2000.0, "Dynamics sync") in logged


def test_local_edit_activities_follow_the_contact_limit_setting(
    api: httpx.Client,
    simulator: SimulatorHandle,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The threshold rule under a local edit, at a lowered ACTIVITY_CONTACT_LIMIT (the cycle
    tests cover the default 5,000 / 5,001 itself)."""
    monkeypatch.setenv("ACTIVITY_CONTACT_LIMIT", "40")
    reset_services()
    services = get_services()
    _, at_limit = make_account(simulator, "At limit", 40)
    _, over_limit = make_account(simulator, "Over limit", 41)
    run_cycle_now(services)
    logged = api.patch(
        f"/api/contacts/{at_limit[0]}/account", json={"fields": {"name": "A"}}
    ).json()
    assert (logged["activities_logged"], logged["activities_suppressed"]) == (40, 0)
    suppressed = api.patch(
        f"/api/contacts/{over_limit[0]}/account", json={"fields": {"name": "B"}}
    ).json()
    assert (suppressed["activities_logged"], suppressed["activities_suppressed"]) == (0, 41)
    assert api.get(f"/api/contacts/{over_limit[-1]}").json()["account"]["name"] == "B"
    assert api.get(f"/api/contacts/{over_limit[-1]}/activities").json() == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"name": "x"}', 422, "invalid_body"),
        (b'{"fields": {"nosuchcolumn": 1}}', 422, "invalid_fields"),
        (b'{"fields": {"creditlimit": 1}}', 422, "invalid_fields"),
        (b'{"fields": {"numberofemployees": "many"}}', 422, "invalid_fields"),
        (b'{"fields": {"name": "' + b"x" * 40_000 + b'"}}', 422, "invalid_fields"),
        (b'{"fields": {"name": "' + b"x" * 70_000 + b'"}}', 413, "body_too_large"),
    ],
)
def test_bad_edits_change_nothing(
    api: httpx.Client,
    simulator: SimulatorHandle,
    services: Services,
    body: bytes,
    status: int,
    code: str,
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    before = api.get(f"/api/accounts/{account_id}").json()
    response = api.patch(
        f"/api/contacts/{contacts[0]}/account",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert api.get(f"/api/accounts/{account_id}").json() == before


def test_ids_are_validated_before_any_lookup(api: httpx.Client, services: Services) -> None:
    for bad in (
        "abc",
        "1' or PartitionKey ne '",
        "..%2F..%2Fsecret",
        "00000000-0000-0000-0000-00000000000g",
    ):
        response = api.get(f"/api/accounts/{bad}")
        assert response.status_code in (400, 404), bad
        assert response.json()["error"]["code"] in ("invalid_id", "not_found")
    assert api.get("/api/accounts/00000000-0000-0000-0000-000000000001").status_code == 404


def test_contact_without_account_is_a_conflict(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    _, (parent,) = make_account(simulator, "Contoso", 1)
    (child,) = simulator.control.create_contacts(
        [{"lastname": "Child", "parentcustomerid": parent, "parentcustomertype": "contact"}]
    )
    run_cycle_now(services)
    response = api.patch(f"/api/contacts/{child}/account", json={"fields": {"name": "X"}})
    assert response.status_code == 409
    assert api.get(f"/api/contacts/{child}").json()["accountid"] is None


def test_field_selection_follows_the_sync_users_field_security(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 2, creditlimit=5000.0)
    run_cycle_now(services)
    fields = {f["name"]: f for f in api.get("/api/sync/fields").json()}
    assert fields["creditlimit"]["secured"] is True
    assert fields["creditlimit"]["readable"] is False
    assert fields["name"]["selected"] is True

    refused = api.put("/api/sync/fields", json={"selected": ["name", "creditlimit", "nosuch"]})
    assert refused.status_code == 422
    assert "creditlimit" in refused.json()["error"]["message"]
    assert "nosuch" in refused.json()["error"]["message"]

    simulator.control.set_column_read("app", "creditlimit", True)
    accepted = api.put("/api/sync/fields", json={"selected": ["name", "revenue", "creditlimit"]})
    assert accepted.status_code == 200, accepted.text
    summary = run_cycle_now(services)
    assert summary.activities_logged == 0  # a backfill logs nothing
    account = api.get(f"/api/accounts/{account_id}").json()
    assert account["fields"] == {"name": "Contoso", "revenue": 1000.0, "creditlimit": 5000.0}
    assert api.get(f"/api/contacts/{contacts[0]}/activities").json() == []

    # The grant is revoked: reported, and the mirrored values are kept.
    simulator.control.set_column_read("app", "creditlimit", False)
    simulator.control.update_account(account_id, {"name": "Contoso 2"})
    run_cycle_now(services)
    status = api.get("/api/sync/status").json()
    assert status["unreadable_fields"] == ["creditlimit"]
    account = api.get(f"/api/accounts/{account_id}").json()
    assert account["fields"]["creditlimit"] == 5000.0
    assert account["fields"]["name"] == "Contoso 2"


def test_status_and_openapi(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    status = api.get("/api/sync/status").json()
    for key in (
        "last_cycles",
        "next_due",
        "queue_backlog",
        "poison_count",
        "cursor_age_s",
        "last_errors",
    ):
        assert key in status
    (cycle,) = status["last_cycles"]
    for key in (
        "started_at",
        "finished_at",
        "accounts_changed",
        "batches",
        "activities_logged",
        "activities_suppressed",
        "errors",
    ):
        assert key in cycle
    # The route's model answers what `acctsync status` prints, key for key.
    assert list(status) == list(sync_status(services).to_json())
    assert status["last_cycles"] == sync_status(services).to_json()["last_cycles"]
    spec = api.get("/api/openapi.json").json()
    assert "/api/contacts/{contactid}/account" in spec["paths"]


def test_every_error_has_the_contract_shape_and_says_what_to_do(
    api: httpx.Client, api_base: str
) -> None:
    guid = "00000000-0000-4000-8000-000000000001"
    unknown = api.get("/api/nosuchroute")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "not_found",
        "message": "no route /api/nosuchroute; see /api/docs",
    }
    # A method the route does not take names the route that does what was meant.
    wrong = api.patch(f"/api/accounts/{guid}", json={"fields": {"name": "x"}})
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "PATCH /api/contacts/{contactid}/account" in wrong.json()["error"]["message"]
    assert "GET" in wrong.headers["allow"]
    # FastAPI's own validation errors keep the shape, and say what the body must be.
    bad = api.put("/api/sync/fields", json={"selected": "name"})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "invalid_body" and '{"selected": [' in error["message"]
    assert set(bad.json()) == {"error"}


def test_the_description_and_the_docs_are_generated_and_open(api_base: str) -> None:
    with httpx.Client(base_url=api_base, timeout=30) as anonymous:  # no key
        schema = anonymous.get("/api/openapi.json")
        assert schema.status_code == 200
        description = schema.json()
        assert description["info"]["version"] == __version__
        assert "/api/contacts/{contactid}/account" in description["paths"]
        edit = description["paths"]["/api/contacts/{contactid}/account"]["patch"]
        assert "422" in edit["responses"] and "requestBody" in edit
        docs = anonymous.get("/api/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        assert anonymous.get("/api/sync/status").status_code == 401  # data needs the key
