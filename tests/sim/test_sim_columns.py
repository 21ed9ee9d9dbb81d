"""Columns that come and go: a deleted custom column leaves metadata, rows and queries, and
comes back as it was when restored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from acctsync.sim.harness import SimulatorError, SimulatorHandle

MISSING = {
    "code": "0x80060888",
    "message": "Could not find a property named 'new_synctomkto' on type "
    "'Microsoft.Dynamics.CRM.account'.",
}


def attribute_names(api: httpx.Client, table: str = "account") -> set[str]:
    body = api.get(
        f"EntityDefinitions(LogicalName='{table}')/Attributes", params={"$select": "LogicalName"}
    ).json()
    return {a["LogicalName"] for a in body["value"]}


def test_a_deleted_column_leaves_metadata_rows_and_queries(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    ids = sim.control.create_accounts(
        [{"name": f"A{i}", "new_synctomkto": i % 2 == 0} for i in range(3)]
    )
    select = "name,new_synctomkto"
    first = api.get(
        "accounts", params={"$select": select}, headers={"Prefer": "odata.maxpagesize=2"}
    ).json()
    next_link = first["@odata.nextLink"]
    _, last = follow(api, f"accounts?$select={select}", "odata.track-changes")
    delta_link = last["@odata.deltaLink"]

    assert sim.control.delete_column("new_synctomkto") == ["new_synctomkto", "new_synctomktoname"]

    names = attribute_names(api)
    assert "new_synctomkto" not in names and "new_synctomktoname" not in names
    assert "donotemail" in names
    expanded = api.get(
        "EntityDefinitions",
        params={"$select": "LogicalName", "$expand": "Attributes($select=LogicalName)"},
    ).json()["value"]
    account = next(e for e in expanded if e["LogicalName"] == "account")
    assert "new_synctomkto" not in {a["LogicalName"] for a in account["Attributes"]}
    booleans = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes/"
        "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
        params={"$select": "LogicalName"},
    ).json()["value"]
    assert [a["LogicalName"] for a in booleans] == ["donotemail"]
    one = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='new_synctomkto')"
    )
    assert one.status_code == 404

    # Every request naming it, stored links included, is refused as the service refuses it.
    for url, params, headers in (
        ("accounts", {"$select": select}, {}),
        ("accounts", {"$filter": "new_synctomkto eq true"}, {}),
        (f"accounts({ids[0]})", {"$select": select}, {}),
        ("accounts", {"$select": select}, {"Prefer": "odata.track-changes"}),
        (next_link, None, {}),
        (delta_link, None, {}),
    ):
        response = api.get(url, params=params, headers=headers)
        assert response.status_code == 400, url
        assert response.json()["error"] == MISSING

    # Rows no longer carry it, on the Web API nor on the control surface.
    [row, *_] = api.get("accounts").json()["value"]
    assert "new_synctomkto" not in row and "name" in row
    assert "new_synctomkto" not in sim.control.get_account(ids[0])
    with pytest.raises(SimulatorError, match="new_synctomkto is deleted"):
        sim.control.update_account(ids[0], {"new_synctomkto": True})
    with pytest.raises(SimulatorError, match="new_synctomkto is deleted"):
        sim.control.create_accounts([{"name": "x", "new_synctomkto": True}])
    [while_gone] = sim.control.create_accounts([{"name": "Created while it was gone"}])

    assert sim.control.restore_column("new_synctomkto") == ["new_synctomkto", "new_synctomktoname"]
    assert {"new_synctomkto", "new_synctomktoname"} <= attribute_names(api)
    rows = {
        r["accountid"]: r for r in api.get("accounts", params={"$select": select}).json()["value"]
    }
    # The values are kept; a row created meanwhile has none, as after re-creating a column.
    assert [rows[i]["new_synctomkto"] for i in ids] == [True, False, True]
    assert rows[while_gone]["new_synctomkto"] is None
    assert api.get(next_link).status_code == 200
    delta = api.get(delta_link).json()
    assert [r["name"] for r in delta["value"]] == ["Created while it was gone"]


def test_a_deleted_secured_column_takes_its_field_permissions(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    sim.control.set_column_read("app", "new_marketingscore", True)
    url = (
        f"systemusers({sim.env['SIM_APP_USER_ID']})"
        "/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()"
    )
    assert len(api.get(url).json()["AttributePrivileges"]) == 1
    sim.control.delete_column("new_marketingscore")
    assert api.get(url).json()["AttributePrivileges"] == []
    with pytest.raises(SimulatorError, match="is deleted; restore it first"):
        sim.control.set_column_secured("new_marketingscore", False)
    sim.control.restore_column("new_marketingscore")
    assert len(api.get(url).json()["AttributePrivileges"]) == 1


@pytest.mark.parametrize(
    ("table", "column", "message"),
    [
        ("account", "accountid", "primary id column"),
        ("account", "name", "primary name column"),
        ("contact", "fullname", "primary name column"),
        ("account", "createdon", "system column"),
        ("account", "versionnumber", "system column"),
        ("account", "telephone1", "only custom columns can be deleted"),
        ("account", "new_synctomktoname", "belongs to new_synctomkto"),
        ("account", "nosuch", "has no column named 'nosuch'"),
        ("lead", "name", "no table named 'lead'"),
    ],
)
def test_only_custom_columns_can_be_deleted(
    sim: SimulatorHandle, table: str, column: str, message: str
) -> None:
    with pytest.raises(SimulatorError, match=message):
        sim.control.delete_column(column, table=table)


def test_reset_brings_deleted_columns_back(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.delete_column("new_longnotes")
    with pytest.raises(SimulatorError, match="already deleted"):
        sim.control.delete_column("new_longnotes")
    sim.control.reset()
    assert "new_longnotes" in attribute_names(api)
    with pytest.raises(SimulatorError, match="is not deleted"):
        sim.control.restore_column("new_longnotes")
