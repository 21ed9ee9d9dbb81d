"""Table privileges: RetrieveUserPrivileges, and reads checked against them as Dataverse does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from acctsync.sim.harness import SimulatorError, SimulatorHandle

FUNCTION = "Microsoft.Dynamics.CRM.RetrieveUserPrivileges"
DEFAULTS = ["prvReadAccount", "prvReadContact", "prvReadOrganization", "prvReadSystemUser"]


def privileges(api: httpx.Client, user_id: str, parens: str = "()") -> list[dict[str, Any]]:
    response = api.get(f"systemusers({user_id})/{FUNCTION}{parens}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith(
        "$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegesResponse"
    )
    assert set(body) == {"@odata.context", "RolePrivileges"}
    result: list[dict[str, Any]] = body["RolePrivileges"]
    return result


def test_both_principals_read_accounts_and_contacts_at_global_depth(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    business_unit = api.get("WhoAmI").json()["BusinessUnitId"]
    for user_id in (sim.env["SIM_APP_USER_ID"], sim.env["SIM_SYNC_USER_ID"]):
        held = privileges(api, user_id)
        assert [p["PrivilegeName"] for p in held] == DEFAULTS
        assert {p["Depth"] for p in held} == {"Global"}
        assert {p["BusinessUnitId"] for p in held} == {business_unit}
        assert set(held[0]) == {"Depth", "PrivilegeId", "BusinessUnitId", "PrivilegeName"}
        assert privileges(api, user_id, parens="") == held
    # Privilege ids are the same for both users and in every run.
    app = privileges(api, sim.env["SIM_APP_USER_ID"])
    user = privileges(api, sim.env["SIM_SYNC_USER_ID"])
    assert [p["PrivilegeId"] for p in app] == [p["PrivilegeId"] for p in user]
    missing = api.get(f"systemusers(00000000-0000-0000-0000-000000000001)/{FUNCTION}()")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "0x80040217"


def test_without_read_privilege_a_table_answers_403(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Hidden"}])
    held = sim.control.set_privilege("app", "prvReadAccount", None)
    assert "prvReadAccount" not in held
    app_user = sim.env["SIM_APP_USER_ID"]
    privilege_id = next(
        p["PrivilegeId"]
        for p in privileges(api, sim.env["SIM_SYNC_USER_ID"])
        if p["PrivilegeName"] == "prvReadAccount"
    )
    for url in ("accounts?$select=name", f"accounts({account_id})", "accounts/$count"):
        response = api.get(url)
        assert response.status_code == 403, url
        assert response.json()["error"] == {
            "code": "0x80040220",
            "message": f"Principal user (Id={app_user}, type=8, roleCount=1, privilegeCount=3, "
            f"accessMode=4), is missing prvReadAccount privilege (Id={privilege_id}) on OTC=1 "
            "for entity 'account'.",
        }
    assert api.get("contacts", params={"$select": "fullname"}).status_code == 200
    # The sync user keeps its own privileges.
    assert "prvReadAccount" in {
        p["PrivilegeName"] for p in privileges(api, sim.env["SIM_SYNC_USER_ID"])
    }
    sim.control.set_privilege("app", "prvReadSystemUser", None)
    denied = api.get(f"systemusers({app_user})/{FUNCTION}()")
    assert denied.status_code == 403
    assert "prvReadSystemUser" in denied.json()["error"]["message"]

    sim.control.reset()
    assert api.get("accounts", params={"$select": "name"}).status_code == 200


def test_change_tracking_needs_global_read(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    sim.control.create_accounts([{"name": f"A{i}"} for i in range(3)])
    _, last = follow(api, "accounts?$select=name", "odata.track-changes")
    delta_link = last["@odata.deltaLink"]
    tracking_next = api.get(
        "accounts?$select=name", headers={"Prefer": "odata.track-changes,odata.maxpagesize=1"}
    ).json()["@odata.nextLink"]

    for depth in ("Basic", "Local", "Deep"):
        sim.control.set_privilege("app", "prvReadAccount", depth)
        # Ordinary queries work at any depth.
        pages, _ = follow(api, "accounts?$select=name", "odata.maxpagesize=2")
        assert sum(len(p) for p in pages) == 3
        for url, prefer in (
            ("accounts?$select=name", "odata.track-changes"),
            (delta_link, None),
            (tracking_next, None),
        ):
            response = api.get(url, headers={"Prefer": prefer} if prefer else {})
            assert response.status_code == 403, (depth, url)
            error = response.json()["error"]
            assert error["code"] == "0x80040220"
            assert "has prvReadAccount" in error["message"]
            assert f"at {depth} depth" in error["message"]
            assert "needs organization-level (Global) read access" in error["message"]
    # Contacts are read at Global still, so they track.
    _, contacts = follow(api, "contacts?$select=fullname", "odata.track-changes")
    assert "@odata.deltaLink" in contacts
    sim.control.set_privilege("app", "prvReadAccount", "Global")
    assert api.get(delta_link).status_code == 200


def test_granted_write_privileges_show_and_change_the_answer(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    assert api.post("accounts", json={"name": "x"}).status_code == 403
    held = sim.control.set_privilege("app", "prvCreateAccount", "Local")
    assert held["prvCreateAccount"] == "Local"
    listed = {p["PrivilegeName"]: p["Depth"] for p in privileges(api, sim.env["SIM_APP_USER_ID"])}
    assert listed["prvCreateAccount"] == "Local"
    # With the privilege the request passes the check and meets what the simulator lacks.
    assert api.post("accounts", json={"name": "x"}).status_code == 501
    assert api.delete("accounts(00000000-0000-0000-0000-000000000001)").status_code == 403


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"principal": "admin", "privilege": "prvReadAccount", "depth": "Global"}, "principal"),
        ({"principal": "app", "privilege": "prvReadLead", "depth": "Global"}, "not a privilege"),
        ({"principal": "app", "privilege": "ReadAccount", "depth": "Global"}, "not a privilege"),
        ({"principal": "app", "privilege": "prvReadAccount", "depth": "Org"}, "depth must be"),
        ({"principal": "app", "privilege": "prvReadAccount", "depth": 3}, "the body must be"),
    ],
)
def test_privilege_changes_are_checked(
    sim: SimulatorHandle, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(SimulatorError, match=message):
        sim.control._call("POST", "/privileges", body)
