"""Table definitions: $expand=Attributes, typed casts with their limits, option sets, and the
Two Options column new_synctomkto."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from acctsync.sim.demo import generate
from acctsync.sim.harness import SimulatorError, SimulatorHandle
from acctsync.sim.org import ORG

ATTRIBUTE_SELECT = (
    "LogicalName,AttributeType,IsValidForRead,IsValidODataAttribute,IsSecured,AttributeOf,"
    "MetadataId"
)
CRM = "Microsoft.Dynamics.CRM."


def cast(api: httpx.Client, type_name: str, table: str = "account", **params: str) -> Any:
    response = api.get(
        f"EntityDefinitions(LogicalName='{table}')/Attributes/{CRM}{type_name}", params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["LogicalName"]: item for item in items}


def test_one_request_answers_both_tables_with_their_attributes(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    response = api.get(
        "EntityDefinitions",
        params={
            "$select": "LogicalName,ChangeTrackingEnabled",
            "$filter": "LogicalName eq 'account' or LogicalName eq 'contact'",
            "$expand": f"Attributes($select={ATTRIBUTE_SELECT})",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"] == (
        f"{sim.dataverse_url}/api/data/v9.2/$metadata#EntityDefinitions"
        f"(LogicalName,ChangeTrackingEnabled,Attributes({ATTRIBUTE_SELECT}))"
    )
    tables = by_name(body["value"])
    assert set(tables) == {"account", "contact"}
    account = tables["account"]
    assert set(account) == {
        "@odata.type",
        "MetadataId",
        "LogicalName",
        "ChangeTrackingEnabled",
        "Attributes",
    }
    assert account["ChangeTrackingEnabled"] is True
    attributes = by_name(account["Attributes"])
    assert set(attributes["name"]) == set(ATTRIBUTE_SELECT.split(",")) | {"@odata.type"}
    assert attributes["name"]["@odata.type"] == f"#{CRM}StringAttributeMetadata"
    assert attributes["creditlimit"]["IsSecured"] is True
    assert attributes["parentaccountidname"]["AttributeOf"] == "parentaccountid"
    assert attributes["new_writeonlytoken"]["IsValidForRead"] is False
    assert attributes["new_synctomkto"]["AttributeType"] == "Boolean"
    assert "fullname" in by_name(tables["contact"]["Attributes"])
    # The same attributes as the per-table request gives, ids included.
    alone = api.get(
        "EntityDefinitions(LogicalName='account')/Attributes", params={"$select": ATTRIBUTE_SELECT}
    ).json()["value"]
    assert account["Attributes"] == alone


def test_expand_on_one_definition_with_a_nested_filter(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    body = api.get(
        "EntityDefinitions(LogicalName='account')",
        params={
            "$select": "LogicalName",
            "$expand": "Attributes($select=LogicalName;$filter=AttributeType eq "
            f"{CRM}AttributeTypeCode'Picklist')",
        },
    ).json()
    assert body["@odata.context"].endswith(
        "$metadata#EntityDefinitions(LogicalName,Attributes(LogicalName))/$entity"
    )
    assert [a["LogicalName"] for a in body["Attributes"]] == ["industrycode"]

    # Without a nested $select every attribute comes with the properties of its own type.
    full = api.get(
        "EntityDefinitions(LogicalName='contact')",
        params={"$select": "LogicalName", "$expand": "Attributes"},
    ).json()
    assert by_name(full["Attributes"])["emailaddress1"]["MaxLength"] == 100

    for expand, status in (
        ("Attributes($select=MaxLength)", 400),  # not an AttributeMetadata property
        ("Nope", 400),
        ("Attributes($top=1)", 501),
        ("Keys", 501),
        ("Attributes($select=LogicalName", 400),
    ):
        response = api.get("EntityDefinitions", params={"$expand": expand})
        assert response.status_code == status, (expand, response.text)
        if status == 400:
            assert response.json()["error"]["code"] == "0x80060888"
    # $select on the base type names only shared properties, as without $expand.
    assert (
        api.get(
            "EntityDefinitions(LogicalName='account')/Attributes", params={"$select": "MaxLength"}
        ).status_code
        == 400
    )


def test_string_and_memo_casts_give_max_length(sim: SimulatorHandle, api: httpx.Client) -> None:
    body = cast(api, "StringAttributeMetadata", **{"$select": "LogicalName,MaxLength"})
    table_id = api.get("EntityDefinitions(LogicalName='account')").json()["MetadataId"]
    assert body["@odata.context"] == (
        f"{sim.dataverse_url}/api/data/v9.2/$metadata#EntityDefinitions('{table_id}')"
        f"/Attributes/{CRM}StringAttributeMetadata(LogicalName,MaxLength)"
    )
    strings = by_name(body["value"])
    assert {n: a["MaxLength"] for n, a in strings.items() if n in ("name", "accountnumber")} == {
        "name": 160,
        "accountnumber": 20,
    }
    assert strings["websiteurl"]["MaxLength"] == 200
    # A cast returns only attributes of that type.
    assert {a["@odata.type"] for a in body["value"]} == {f"#{CRM}StringAttributeMetadata"}
    assert "description" not in strings and "revenue" not in strings
    assert set(strings["name"]) == {"@odata.type", "MetadataId", "LogicalName", "MaxLength"}

    formats = by_name(
        cast(api, "StringAttributeMetadata", **{"$select": "LogicalName,Format"})["value"]
    )
    assert (formats["websiteurl"]["Format"], formats["telephone1"]["Format"]) == ("Url", "Phone")

    memos = by_name(
        cast(api, "MemoAttributeMetadata", **{"$select": "LogicalName,MaxLength"})["value"]
    )
    assert {n: a["MaxLength"] for n, a in memos.items()} == {
        "description": 2000,
        "new_longnotes": 1_048_576,
    }
    contact = by_name(cast(api, "StringAttributeMetadata", "contact")["value"])
    assert {n: contact[n]["MaxLength"] for n in ("fullname", "firstname", "emailaddress1")} == {
        "fullname": 160,
        "firstname": 50,
        "emailaddress1": 100,
    }
    # A property of another type is not a property of this one.
    wrong = api.get(
        f"EntityDefinitions(LogicalName='account')/Attributes/{CRM}StringAttributeMetadata",
        params={"$select": "LogicalName,Precision"},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"]["message"] == (
        f"Could not find a property named 'Precision' on type '{CRM}StringAttributeMetadata'."
    )


def test_number_casts_give_ranges_and_precision(api: httpx.Client) -> None:
    select = {"$select": "LogicalName,MinValue,MaxValue"}
    integers = by_name(cast(api, "IntegerAttributeMetadata", **select)["value"])
    assert {n: (a["MinValue"], a["MaxValue"]) for n, a in integers.items()} == {
        "numberofemployees": (0, 1_000_000_000),
        "new_marketingscore": (0, 100),
    }
    bigints = by_name(cast(api, "BigIntAttributeMetadata", **select)["value"])
    assert bigints["versionnumber"]["MaxValue"] == 2**63 - 1

    precise = {"$select": "LogicalName,MinValue,MaxValue,Precision"}
    money = by_name(cast(api, "MoneyAttributeMetadata", **precise)["value"])
    assert set(money) == {"revenue", "creditlimit"}
    for name in ("revenue", "creditlimit"):
        assert (money[name]["MinValue"], money[name]["MaxValue"], money[name]["Precision"]) == (
            0,
            100_000_000_000_000,
            2,
        )
    doubles = by_name(cast(api, "DoubleAttributeMetadata", **precise)["value"])
    assert (doubles["address1_latitude"]["MinValue"], doubles["address1_latitude"]["MaxValue"]) == (
        -90,
        90,
    )
    assert doubles["address1_longitude"]["Precision"] == 5
    decimals = by_name(cast(api, "DecimalAttributeMetadata", **precise)["value"])
    assert decimals["exchangerate"]["Precision"] == 12
    assert decimals["exchangerate"]["MaxValue"] == 100_000_000_000
    # A type no column of the table has: an empty list, not an error.
    assert cast(api, "DecimalAttributeMetadata", "contact")["value"] == []
    assert cast(api, "MultiSelectPicklistAttributeMetadata")["value"] == []
    assert (
        api.get(
            f"EntityDefinitions(LogicalName='account')/Attributes/{CRM}NoSuchAttributeMetadata"
        ).status_code
        == 404
    )


def test_choice_casts_expand_their_option_sets(api: httpx.Client) -> None:
    picklists = cast(
        api, "PicklistAttributeMetadata", **{"$select": "LogicalName", "$expand": "OptionSet"}
    )
    assert picklists["@odata.context"].endswith(
        f"/Attributes/{CRM}PicklistAttributeMetadata(LogicalName,OptionSet)"
    )
    [industry] = picklists["value"]
    options = industry["OptionSet"]["Options"]
    assert [o["Value"] for o in options] == list(range(1, 34))
    assert options[0]["Label"]["UserLocalizedLabel"]["Label"] == "Accounting"
    assert options[32]["Label"]["LocalizedLabels"][0]["Label"] == "Wholesale"
    assert industry["OptionSet"]["OptionSetType"] == "Picklist"

    [state] = cast(
        api, "StateAttributeMetadata", **{"$select": "LogicalName", "$expand": "OptionSet"}
    )["value"]
    assert [(o["Value"], o["DefaultStatus"]) for o in state["OptionSet"]["Options"]] == [
        (0, 1),
        (1, 2),
    ]
    [status] = cast(
        api,
        "StatusAttributeMetadata",
        "contact",
        **{"$select": "LogicalName", "$expand": "OptionSet"},
    )["value"]
    assert [(o["Value"], o["State"]) for o in status["OptionSet"]["Options"]] == [(1, 0), (2, 1)]

    booleans = by_name(
        cast(
            api,
            "BooleanAttributeMetadata",
            **{
                "$select": "LogicalName,DefaultValue",
                "$expand": "OptionSet($select=TrueOption,FalseOption)",
            },
        )["value"]
    )
    assert set(booleans) == {"donotemail", "new_synctomkto"}
    sync = booleans["new_synctomkto"]
    assert sync["DefaultValue"] is True  # created as docs/resync.md says: new accounts sync
    assert set(sync["OptionSet"]) == {"MetadataId", "TrueOption", "FalseOption"}
    assert sync["OptionSet"]["TrueOption"]["Value"] == 1
    assert sync["OptionSet"]["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"] == "Yes"
    assert sync["OptionSet"]["FalseOption"]["Value"] == 0
    assert sync["OptionSet"]["FalseOption"]["Label"]["UserLocalizedLabel"]["Label"] == "No"
    assert (
        booleans["donotemail"]["OptionSet"]["TrueOption"]["Label"]["UserLocalizedLabel"]["Label"]
        == "Do Not Allow"
    )

    # OptionSet belongs to the choice types: not to AttributeMetadata nor to strings.
    for path in ("Attributes", f"Attributes/{CRM}StringAttributeMetadata"):
        response = api.get(
            f"EntityDefinitions(LogicalName='account')/{path}", params={"$expand": "OptionSet"}
        )
        assert response.status_code == 400, path


def test_one_attribute_with_a_cast_and_its_option_set(api: httpx.Client) -> None:
    base = "EntityDefinitions(LogicalName='account')/Attributes"
    one = api.get(
        f"{base}(LogicalName='industrycode')/{CRM}PicklistAttributeMetadata",
        params={"$select": "LogicalName", "$expand": "OptionSet"},
    ).json()
    assert one["@odata.context"].endswith(
        f"/Attributes/{CRM}PicklistAttributeMetadata(LogicalName,OptionSet)/$entity"
    )
    assert one["OptionSet@odata.context"].endswith(
        f"/{CRM}PicklistAttributeMetadata/OptionSet/$entity"
    )
    assert len(one["OptionSet"]["Options"]) == 33
    # By MetadataId, and straight to the option set as the docs show.
    metadata_id = one["MetadataId"]
    options = api.get(
        f"{base}({metadata_id})/{CRM}PicklistAttributeMetadata/OptionSet",
        params={"$select": "Options"},
    ).json()
    assert options["@odata.context"].endswith("/OptionSet(Options)/$entity")
    assert set(options) == {"@odata.context", "MetadataId", "Options"}
    revenue = api.get(
        f"{base}(LogicalName='revenue')/{CRM}MoneyAttributeMetadata",
        params={"$select": "MinValue,MaxValue,Precision"},
    ).json()
    assert (revenue["MinValue"], revenue["MaxValue"], revenue["Precision"]) == (
        0,
        100_000_000_000_000,
        2,
    )
    mismatch = api.get(f"{base}(LogicalName='name')/{CRM}MoneyAttributeMetadata")
    assert mismatch.status_code == 404
    # RequiredLevel is as it was: the primary name is ApplicationRequired, others None.
    name = api.get(f"{base}(LogicalName='name')", params={"$select": "RequiredLevel"}).json()
    assert name["RequiredLevel"]["Value"] == "ApplicationRequired"
    city = api.get(f"{base}(LogicalName='address1_city')", params={"$select": "RequiredLevel"})
    assert city.json()["RequiredLevel"]["Value"] == "None"


def test_sync_to_marketing_in_demo_data_and_control_writes(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    data = generate(ORG, accounts=100, contacts=0, seed=4)
    values = [row["new_synctomkto"] for _, row in data.accounts]
    assert values.count(None) > 80
    assert values.count(True) >= 5
    assert values.count(False) >= 2

    sim.control.reset(accounts=30, contacts=0, seed=4)
    rows = api.get(
        "accounts",
        params={"$select": "new_synctomkto"},
        headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
    ).json()["value"]
    seen = {r["new_synctomkto"] for r in rows}
    assert seen == {None, True, False}
    yes = next(r for r in rows if r["new_synctomkto"] is True)
    assert yes["new_synctomkto@OData.Community.Display.V1.FormattedValue"] == "Yes"

    # A row created now gets the column's default; control writes can set it either way.
    [created, marked] = sim.control.create_accounts(
        [{"name": "New"}, {"name": "Marked", "new_synctomkto": False}]
    )
    assert sim.control.get_account(created)["new_synctomkto"] is True
    assert sim.control.get_account(marked)["new_synctomkto"] is False
    assert sim.control.update_account(marked, {"new_synctomkto": True})["new_synctomkto"] is True
    with pytest.raises(SimulatorError, match="true or false"):
        sim.control.update_account(marked, {"new_synctomkto": "yes"})


def test_control_writes_respect_the_limits(sim: SimulatorHandle, api: httpx.Client) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Limits", "revenue": 10.0}])
    with pytest.raises(SimulatorError, match=r"outside the valid range. Accepted Values: 0 to 100"):
        sim.control.update_account(account_id, {"new_marketingscore": 101})
    with pytest.raises(SimulatorError, match="0 to 1000000000"):
        sim.control.update_account(account_id, {"numberofemployees": -1})
    with pytest.raises(SimulatorError, match="outside the valid range"):
        sim.control.update_account(account_id, {"revenue": 1e15})
    row = sim.control.update_account(account_id, {"address1_latitude": 47.6062095})
    assert row["address1_latitude"] == 47.60621
    assert row["exchangerate"] == 1.0
    formatted = api.get(
        f"accounts({account_id})",
        params={"$select": "address1_latitude"},
        headers={"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'},
    ).json()
    assert formatted["address1_latitude@OData.Community.Display.V1.FormattedValue"] == "47.60621"
    with pytest.raises(SimulatorError, match="no writable column 'exchangerate'"):
        sim.control.update_account(account_id, {"exchangerate": 2.0})
