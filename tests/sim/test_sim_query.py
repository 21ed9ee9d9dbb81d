"""Ordinary queries: $select, paging with odata.maxpagesize and nextLink, annotations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from acctsync.sim.harness import SimulatorHandle


def test_select_returns_the_key_and_etag_and_refuses_unknown_columns(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Contoso", "revenue": 1000}])
    response = api.get("accounts", params={"$select": "name,revenue"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["@odata.context"] == (
        f"{sim.dataverse_url}/api/data/v9.2/$metadata#accounts(name,revenue)"
    )
    [row] = body["value"]
    assert row["accountid"] == account_id
    assert row["name"] == "Contoso"
    assert row["revenue"] == 1000
    # Selecting a money column brings its currency along.
    assert row["_transactioncurrencyid_value"]
    version = sim.control.get_account(account_id)["versionnumber"]
    assert row["@odata.etag"] == f'W/"{version}"'
    assert set(row) == {
        "@odata.etag",
        "name",
        "revenue",
        "accountid",
        "_transactioncurrencyid_value",
    }

    unknown = api.get("accounts", params={"$select": "name,nosuchcolumn"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "code": "0x80060888",
        "message": "Could not find a property named 'nosuchcolumn' on type "
        "'Microsoft.Dynamics.CRM.account'.",
    }
    # A lookup is selected by its _<name>_value property, not its logical name.
    assert api.get("contacts", params={"$select": "parentcustomerid"}).status_code == 400


def test_without_select_every_readable_column_comes_back(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    sim.control.create_accounts([{"name": "Fabrikam", "new_writeonlytoken": "secret"}])
    [row] = api.get("accounts").json()["value"]
    assert {"name", "accountnumber", "_ownerid_value", "modifiedon", "versionnumber"} <= set(row)
    assert "new_writeonlytoken" not in row
    assert row["modifiedon"].endswith("Z")


def test_paging_with_maxpagesize_and_next_link(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    ids = sim.control.create_accounts([{"name": f"Account {i}"} for i in range(23)])
    first = api.get(
        "accounts", params={"$select": "name"}, headers={"Prefer": "odata.maxpagesize=10"}
    )
    assert first.headers["preference-applied"] == "odata.maxpagesize=10"
    next_link = first.json()["@odata.nextLink"]
    assert "$skiptoken=%3Ccookie%20pagenumber=%222%22" in next_link
    assert "istracking=%22False%22" in next_link
    assert "$select=name" in next_link

    pages, last = follow(api, "accounts?$select=name", "odata.maxpagesize=10")
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [row["accountid"] for page in pages for row in page] == ids
    assert "@odata.deltaLink" not in last

    tampered = api.get(next_link.replace("pagenumber=%222%22", "pagenumber=%22x%22"))
    assert tampered.status_code == 400


def test_pages_are_capped_at_5000(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.reset(accounts=5003, contacts=0)
    default = api.get("accounts", params={"$select": "name"})
    assert len(default.json()["value"]) == 5000
    assert "preference-applied" not in default.headers
    assert "@odata.nextLink" in default.json()
    asked = api.get(
        "accounts", params={"$select": "name"}, headers={"Prefer": "odata.maxpagesize=9000"}
    )
    assert asked.headers["preference-applied"] == "odata.maxpagesize=5000"
    assert len(asked.json()["value"]) == 5000
    rest = api.get(asked.json()["@odata.nextLink"]).json()
    assert len(rest["value"]) == 3
    assert "@odata.nextLink" not in rest


def test_top_and_filter_without_change_tracking(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.create_accounts(
        [{"name": "Alpha", "numberofemployees": 5}, {"name": "Beta", "numberofemployees": 50}]
    )
    top = api.get("accounts", params={"$select": "name", "$top": "1"}).json()
    assert len(top["value"]) == 1
    assert "@odata.nextLink" not in top
    big = api.get(
        "accounts", params={"$select": "name", "$filter": "numberofemployees gt 10"}
    ).json()
    assert [r["name"] for r in big["value"]] == ["Beta"]
    assert api.get("accounts", params={"$orderby": "name"}).status_code == 501


def test_lookup_annotations_only_when_asked(sim: SimulatorHandle, api: httpx.Client) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Parent Co"}])
    [boss] = sim.control.create_contacts(
        [{"firstname": "Ada", "lastname": "Boss", "parentcustomerid": account_id}]
    )
    sim.control.create_contacts(
        [
            {
                "firstname": "Bob",
                "lastname": "Report",
                "parentcustomerid": boss,
                "parentcustomertype": "contact",
            },
            {"firstname": "Orphan", "lastname": "Contact"},
        ]
    )
    params = {"$select": "fullname,_parentcustomerid_value"}
    plain = {r["fullname"]: r for r in api.get("contacts", params=params).json()["value"]}
    assert plain["Bob Report"]["_parentcustomerid_value"] == boss
    assert not any("@" in key for key in plain["Bob Report"] if key != "@odata.etag")
    assert plain["Orphan Contact"]["_parentcustomerid_value"] is None

    for prefer in (
        'odata.include-annotations="*"',
        'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname,'
        'Microsoft.Dynamics.CRM.associatednavigationproperty"',
    ):
        response = api.get("contacts", params=params, headers={"Prefer": prefer})
        assert response.headers["preference-applied"] == prefer
        rows = {r["fullname"]: r for r in response.json()["value"]}
        key = "_parentcustomerid_value@Microsoft.Dynamics.CRM."
        assert rows["Ada Boss"][key + "lookuplogicalname"] == "account"
        assert rows["Ada Boss"][key + "associatednavigationproperty"] == "parentcustomerid_account"
        assert rows["Bob Report"][key + "lookuplogicalname"] == "contact"
        assert (
            rows["Bob Report"][key + "associatednavigationproperty"] == "parentcustomerid_contact"
        )
        assert key + "lookuplogicalname" not in rows["Orphan Contact"]

    formatted = api.get(
        "contacts",
        params=params,
        headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
    ).json()["value"]
    bob = next(r for r in formatted if r["fullname"] == "Bob Report")
    assert bob["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Ada Boss"
    assert "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname" not in bob


def test_single_row_and_unknown_segments(sim: SimulatorHandle, api: httpx.Client) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Solo"}])
    row = api.get(f"accounts({account_id})", params={"$select": "name"}).json()
    assert row["@odata.context"].endswith("$metadata#accounts(name)/$entity")
    assert row["name"] == "Solo"
    missing = api.get("accounts(00000000-0000-0000-0000-000000000001)")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "0x80040217"
    assert api.get("leads").status_code == 404


def test_writes_through_the_web_api_are_refused_and_recorded(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    sim.control.requests(clear=True)
    created = api.post("accounts", json={"name": "Nope"})
    assert created.status_code == 403
    assert "prvCreateAccount" in created.json()["error"]["message"]
    assert api.delete("contacts(00000000-0000-0000-0000-000000000001)").status_code == 403
    assert sim.control.stats()["accounts"] == 0
    methods = [(r["method"], r["status"]) for r in sim.control.requests()]
    assert methods == [("POST", 403), ("DELETE", 403)]


def test_counts_and_organization_settings(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.create_accounts([{"name": f"N{i}"} for i in range(7)])
    counted = api.get("accounts", params={"$select": "name", "$count": "true"}).json()
    assert counted["@odata.count"] == 7
    bare = api.get("accounts/$count")
    assert (bare.status_code, bare.text) == (200, "7")
    [org] = api.get("organizations", params={"$select": "expirechangetrackingindays"}).json()[
        "value"
    ]
    assert org["expirechangetrackingindays"] == 7


def test_filter_on_modifiedon_and_createdon_pages_like_any_query(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    rows = [
        {
            "name": f"M{month}",
            "createdon": f"2024-0{month}-01T08:00:00Z",
            "modifiedon": f"2024-0{month}-15T10:00:00Z",
        }
        for month in range(1, 8)
    ]
    ids = sim.control.create_accounts(rows)
    assert sim.control.get_account(ids[0])["modifiedon"] == "2024-01-15T10:00:00Z"

    window = "modifiedon ge 2024-02-15T10:00:00Z and modifiedon lt 2024-06-15T10:00:00Z"
    query = f"accounts?$select=name,modifiedon&$filter={window}"
    pages, last = follow(api, query, "odata.maxpagesize=2")
    assert [len(p) for p in pages] == [2, 2]
    names = [r["name"] for p in pages for r in p]
    assert names == ["M2", "M3", "M4", "M5"]
    assert set(pages[0][0]) == {"@odata.etag", "name", "modifiedon", "accountid"}
    assert "@odata.deltaLink" not in last
    first = api.get(query, headers={"Prefer": "odata.maxpagesize=2"}).json()
    # The next link keeps the filter and the selection, as Dataverse's links do.
    assert "$filter=modifiedon" in first["@odata.nextLink"]
    assert "$select=name,modifiedon" in first["@odata.nextLink"]

    def names_for(text: str) -> list[str]:
        body = api.get("accounts", params={"$select": "name", "$filter": text}).json()
        return [r["name"] for r in body["value"]]

    assert names_for("createdon gt 2024-03-01T08:00:00Z and createdon le 2024-05-01T08:00:00Z") == [
        "M4",
        "M5",
    ]
    # An offset is a moment in UTC: 10:00+02:00 is 08:00Z.
    assert names_for("createdon eq 2024-03-01T10:00:00+02:00") == ["M3"]
    # Stored values have whole seconds: 08:00:00 is before 08:00:00.5.
    assert names_for("createdon ge 2024-07-01T08:00:00.5Z") == []
    assert names_for("createdon lt 2024-01-01T08:00:00.5Z") == ["M1"]
    assert names_for("modifiedon le 2024-01-15T10:00Z or modifiedon gt 2024-07-01T00:00:00Z") == [
        "M1",
        "M7",
    ]
    bad = api.get("accounts", params={"$filter": "modifiedon ge 2024-13-01T00:00:00Z"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "0x80060888"


def test_date_filter_is_refused_with_change_tracking(api: httpx.Client) -> None:
    response = api.get(
        "accounts",
        params={"$select": "name", "$filter": "modifiedon ge 2024-01-01T00:00:00Z"},
        headers={"Prefer": "odata.track-changes"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80040203",
        "message": 'The "$filter" query parameter isn\'t supported when Change Tracking '
        "is enabled.",
    }
