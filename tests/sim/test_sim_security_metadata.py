"""Metadata, column-level security and RetrievePrincipalAttributePrivileges."""

from __future__ import annotations

import httpx

from acctsync.sim.harness import SimulatorHandle


def test_entity_definition_says_change_tracking_is_on(api: httpx.Client) -> None:
    body = api.get(
        "EntityDefinitions(LogicalName='account')", params={"$select": "ChangeTrackingEnabled"}
    ).json()
    assert body["ChangeTrackingEnabled"] is True
    assert body["MetadataId"]
    assert body["@odata.context"].endswith(
        "$metadata#EntityDefinitions(ChangeTrackingEnabled)/$entity"
    )
    listed = api.get(
        "EntityDefinitions",
        params={"$select": "LogicalName", "$filter": "ChangeTrackingEnabled eq true"},
    ).json()["value"]
    assert {e["LogicalName"] for e in listed} == {"account", "contact"}
    assert api.get("EntityDefinitions(LogicalName='lead')").status_code == 404


def test_attribute_metadata(api: httpx.Client) -> None:
    select = (
        "LogicalName,SchemaName,AttributeType,AttributeTypeName,IsValidForRead,"
        "IsValidODataAttribute,IsSecured,AttributeOf,DisplayName"
    )
    response = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes", params={"$select": select}
    )
    assert response.status_code == 200
    body = response.json()
    assert "@odata.nextLink" not in body
    attributes = {a["LogicalName"]: a for a in body["value"]}
    name = attributes["name"]
    assert name["AttributeType"] == "String"
    assert name["AttributeTypeName"] == {"Value": "StringType"}
    assert name["SchemaName"] == "Name"
    assert name["@odata.type"] == "#Microsoft.Dynamics.CRM.StringAttributeMetadata"
    assert name["DisplayName"]["UserLocalizedLabel"]["Label"] == "Account Name"
    assert name["DisplayName"]["LocalizedLabels"][0]["LanguageCode"] == 1033
    assert set(name) == set(select.split(",")) | {"@odata.type", "MetadataId"}
    assert attributes["parentaccountid"]["AttributeType"] == "Lookup"
    assert attributes["ownerid"]["AttributeType"] == "Owner"
    assert attributes["parentaccountidname"]["AttributeOf"] == "parentaccountid"
    assert attributes["new_writeonlytoken"]["IsValidForRead"] is False
    assert attributes["revenue"]["AttributeTypeName"] == {"Value": "MoneyType"}

    contact = api.get(
        "EntityDefinitions(LogicalName='contact')/Attributes",
        params={
            "$select": "LogicalName,AttributeType",
            "$filter": "AttributeType eq Microsoft.Dynamics.CRM.AttributeTypeCode'Customer'",
        },
    ).json()["value"]
    assert [a["LogicalName"] for a in contact] == ["parentcustomerid"]

    secured = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes",
        params={"$select": "LogicalName,MetadataId", "$filter": "IsSecured eq true"},
    ).json()["value"]
    assert {a["LogicalName"] for a in secured} == {"creditlimit", "new_marketingscore"}

    unknown = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes", params={"$select": "Nope"}
    )
    assert unknown.status_code == 400


def test_secured_columns_are_null_until_granted(sim: SimulatorHandle, api: httpx.Client) -> None:
    [account_id] = sim.control.create_accounts(
        [{"name": "Rich", "creditlimit": 5000, "new_marketingscore": 80}]
    )
    select = {"$select": "name,creditlimit,new_marketingscore"}
    app_user = sim.env["SIM_APP_USER_ID"]
    privileges_url = (
        f"systemusers({app_user})/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()"
    )

    [row] = api.get("accounts", params=select).json()["value"]
    assert row["creditlimit"] is None
    assert row["new_marketingscore"] is None
    assert api.get(privileges_url).json()["AttributePrivileges"] == []

    sim.control.set_column_read("app", "creditlimit", True)
    [row] = api.get("accounts", params=select).json()["value"]
    assert row["creditlimit"] == 5000
    assert row["new_marketingscore"] is None
    privileges = api.get(privileges_url).json()
    assert privileges["@odata.context"].endswith("RetrievePrincipalAttributePrivilegesResponse")
    metadata_id = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='creditlimit')",
        params={"$select": "MetadataId"},
    ).json()["MetadataId"]
    assert privileges["AttributePrivileges"] == [
        {"AttributeId": metadata_id, "CanCreate": 0, "CanRead": 4, "CanUpdate": 0}
    ]
    # The grant is per principal: the ROPC sync user still has none.
    sync_user = sim.env["SIM_SYNC_USER_ID"]
    other = api.get(
        f"systemusers({sync_user})/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()"
    )
    assert other.json()["AttributePrivileges"] == []

    # Securing a column hides it from everyone without a grant; unsecuring shows it again.
    sim.control.set_column_secured("name", True)
    assert api.get(f"accounts({account_id})", params=select).json()["name"] is None
    sim.control.set_column_secured("name", False)
    sim.control.set_column_secured("new_marketingscore", False)
    row = api.get(f"accounts({account_id})", params=select).json()
    assert (row["name"], row["new_marketingscore"]) == ("Rich", 80)
