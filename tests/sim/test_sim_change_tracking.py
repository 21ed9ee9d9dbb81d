"""Change tracking: initial load, deltas, paging of both, restrictions and expiry."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from acctsync.sim.harness import SimulatorError, SimulatorHandle
from shared.dataverse.client import FORMATTED_VALUE, include_annotations

TRACK = "odata.track-changes"


def rows_of(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [row for page in pages for row in page]


def test_initial_load_pages_and_ends_with_a_delta_link(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    ids = sim.control.create_accounts([{"name": f"A{i}"} for i in range(12)])
    first = api.get(
        "accounts", params={"$select": "name"}, headers={"Prefer": f"{TRACK},odata.maxpagesize=5"}
    )
    applied = first.headers["preference-applied"]
    assert "odata.track-changes" in applied
    assert "odata.maxpagesize=5" in applied
    assert "istracking=%22True%22" in first.json()["@odata.nextLink"]

    # Two Prefer headers work as well as one comma-separated header.
    response = api.get(
        "accounts?$select=name",
        headers=[("Prefer", TRACK), ("Prefer", "odata.maxpagesize=5")],
    )
    assert len(response.json()["value"]) == 5
    pages, last = follow(api, "accounts?$select=name", f"{TRACK}, odata.maxpagesize=5")
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [r["accountid"] for r in rows_of(pages)] == ids
    delta_link = last["@odata.deltaLink"]
    assert delta_link.startswith(f"{sim.dataverse_url}/api/data/v9.2/accounts?$select=name&")
    token = unquote(delta_link.split("$deltatoken=")[1])
    assert token.split("!")[0].isdigit()

    empty = api.get(delta_link).json()
    assert empty["value"] == []
    assert "@odata.deltaLink" in empty
    assert empty["@odata.context"].endswith("$metadata#accounts(name)/$delta")


def test_delta_reports_creates_updates_then_deletes(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    keep, change, drop = sim.control.create_accounts([{"name": n} for n in ("k", "c", "d")])
    _, last = follow(api, "accounts?$select=name", TRACK)
    delta_link = last["@odata.deltaLink"]

    sim.control.update_account(change, {"name": "changed"})
    [created] = sim.control.create_accounts([{"name": "new"}])
    sim.control.delete_account(drop)
    [ghost] = sim.control.create_accounts([{"name": "short-lived"}])
    sim.control.delete_account(ghost)

    pages, last = follow(api, delta_link, "odata.maxpagesize=2")
    rows = rows_of(pages)
    assert [len(p) for p in pages] == [2, 2]
    assert [(r["accountid"], r["name"]) for r in rows[:2]] == [
        (change, "changed"),
        (created, "new"),
    ]
    deleted = rows[2:]
    context = f"{sim.dataverse_url}/api/data/v9.2/$metadata#accounts/$deletedEntity"
    assert deleted == [
        {"@odata.context": context, "id": drop, "reason": "deleted"},
        {"@odata.context": context, "id": ghost, "reason": "deleted"},
    ]
    assert keep not in {r.get("accountid") for r in rows}

    again = api.get(last["@odata.deltaLink"]).json()
    assert again["value"] == []


def test_changes_during_a_chain_reach_the_next_delta(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    ids = sim.control.create_accounts([{"name": f"A{i}"} for i in range(6)])
    first = api.get(
        "accounts", params={"$select": "name"}, headers={"Prefer": f"{TRACK},odata.maxpagesize=2"}
    ).json()
    seen = [r["accountid"] for r in first["value"]]
    # Mid-chain: change a row already served, one not yet served, add one and delete one.
    sim.control.update_account(ids[0], {"name": "served then changed"})
    sim.control.update_account(ids[4], {"name": "changed before served"})
    [late] = sim.control.create_accounts([{"name": "late"}])
    sim.control.delete_account(ids[5])
    pages, last = follow(api, first["@odata.nextLink"], "odata.maxpagesize=2")
    seen += [r["accountid"] for r in rows_of(pages)]
    # The initial load is the snapshot taken at its first page.
    assert seen == ids

    delta_pages, _ = follow(api, last["@odata.deltaLink"])
    changes = rows_of(delta_pages)
    upserts = {r["accountid"]: r["name"] for r in changes if "accountid" in r}
    assert upserts == {
        ids[0]: "served then changed",
        ids[4]: "changed before served",
        late: "late",
    }
    assert [r["id"] for r in changes if r.get("reason") == "deleted"] == [ids[5]]


def test_changes_during_a_delta_chain_are_not_lost(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    ids = sim.control.create_accounts([{"name": f"A{i}"} for i in range(4)])
    _, last = follow(api, "accounts?$select=name", TRACK)
    for account_id in ids:
        sim.control.update_account(account_id, {"name": "round 1"})
    page = api.get(last["@odata.deltaLink"], headers={"Prefer": "odata.maxpagesize=2"}).json()
    sim.control.update_account(ids[3], {"name": "round 2"})
    pages, last = follow(api, page["@odata.nextLink"], "odata.maxpagesize=2")
    pages, _ = follow(api, last["@odata.deltaLink"])
    assert [(r["accountid"], r["name"]) for r in rows_of(pages)] == [(ids[3], "round 2")]


@pytest.mark.parametrize("option", ["$filter", "$orderby", "$expand", "$top"])
def test_query_options_refused_with_change_tracking(api: httpx.Client, option: str) -> None:
    value = {"$filter": "statecode eq 0", "$orderby": "name", "$expand": "x", "$top": "1"}
    response = api.get("accounts", params={option: value[option]}, headers={"Prefer": TRACK})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.'
    )


def test_expired_and_malformed_delta_tokens(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    sim.control.create_accounts([{"name": "x"}])
    _, last = follow(api, "accounts?$select=name", TRACK)
    delta_link = last["@odata.deltaLink"]
    assert api.get(delta_link).status_code == 200
    sim.control.expire_delta_tokens()
    expired = api.get(delta_link)
    assert expired.status_code == 400
    assert expired.json()["error"] == {
        "code": "0x80044352",
        "message": "Version stamp associated with the client has expired. "
        "Please perform a full sync.",
    }
    # A fresh initial load gives a token that works again.
    _, last = follow(api, "accounts?$select=name", TRACK)
    assert api.get(last["@odata.deltaLink"]).status_code == 200

    sim.control.set_delta_token_retention(0.001)
    assert api.get(last["@odata.deltaLink"]).json()["error"]["code"] == "0x80044352"

    malformed = api.get("accounts", params={"$deltatoken": "not-a-token"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] != "0x80044352"


def test_contacts_track_separately_with_cascaded_deletes(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    [account_id] = sim.control.create_accounts([{"name": "Parent"}])
    contact_ids = sim.control.create_contacts(
        [{"firstname": "C", "lastname": str(i), "parentcustomerid": account_id} for i in range(3)]
    )
    _, last = follow(api, "contacts?$select=fullname,_parentcustomerid_value", TRACK)
    # Contacts are parented by their account (a parental relationship): they go with it.
    assert sim.control.delete_account(account_id) == 4
    pages, _ = follow(api, last["@odata.deltaLink"])
    assert sorted(r["id"] for r in rows_of(pages)) == sorted(contact_ids)


def test_a_mirror_following_the_protocol_converges(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    """Random writes between every page fetch; the mirror must end equal to the source."""
    rng = random.Random(11)
    live = sim.control.create_accounts([{"name": f"seed {i}"} for i in range(20)])
    mirror: dict[str, str] = {}

    def mutate() -> None:
        action = rng.random()
        if action < 0.4 or not live:
            live.extend(sim.control.create_accounts([{"name": f"new {rng.random():.6f}"}]))
        elif action < 0.8:
            sim.control.update_account(rng.choice(live), {"name": f"upd {rng.random():.6f}"})
        else:
            victim = rng.choice(live)
            live.remove(victim)
            sim.control.delete_account(victim)

    def apply_chain(url: str, prefer: str) -> str:
        while True:
            body = api.get(url, headers={"Prefer": prefer}).json()
            for row in body["value"]:
                if row.get("reason") == "deleted":
                    mirror.pop(row["id"], None)
                else:
                    mirror[row["accountid"]] = row["name"]
            if "@odata.deltaLink" in body:
                link: str = body["@odata.deltaLink"]
                return link
            mutate()
            url = body["@odata.nextLink"]

    delta_link = apply_chain("accounts?$select=name", f"{TRACK},odata.maxpagesize=3")
    for _ in range(6):
        for _ in range(rng.randint(0, 8)):
            mutate()
        delta_link = apply_chain(delta_link, "odata.maxpagesize=3")
    apply_chain(delta_link, "odata.maxpagesize=3")
    pages, _ = follow(api, "accounts?$select=name")
    assert mirror == {r["accountid"]: r["name"] for r in rows_of(pages)}


def test_a_table_without_change_tracking_pages_plainly(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    ids = sim.control.create_accounts([{"name": f"A{i}"} for i in range(5)])
    _, last = follow(api, "accounts?$select=name", TRACK)
    delta_link = last["@odata.deltaLink"]
    mid_chain = api.get(
        "accounts?$select=name", headers={"Prefer": f"{TRACK},odata.maxpagesize=2"}
    ).json()["@odata.nextLink"]

    sim.control.set_change_tracking("account", False)
    definitions = api.get(
        "EntityDefinitions", params={"$select": "LogicalName,ChangeTrackingEnabled"}
    ).json()["value"]
    assert {d["LogicalName"]: d["ChangeTrackingEnabled"] for d in definitions} == {
        "account": False,
        "contact": True,
    }
    tracked = api.get(
        "EntityDefinitions",
        params={"$select": "LogicalName", "$filter": "ChangeTrackingEnabled eq true"},
    ).json()["value"]
    assert [d["LogicalName"] for d in tracked] == ["contact"]

    first = api.get(
        "accounts", params={"$select": "name"}, headers={"Prefer": f"{TRACK},odata.maxpagesize=2"}
    )
    assert first.status_code == 200
    assert first.headers.get_list("preference-applied") == ["odata.maxpagesize=2"]
    assert "istracking=%22False%22" in first.json()["@odata.nextLink"]
    pages, last = follow(api, "accounts?$select=name", f"{TRACK},odata.maxpagesize=2")
    assert [r["accountid"] for p in pages for r in p] == ids
    assert "@odata.deltaLink" not in last
    # The header is ignored, so the query is a plain one: $filter is allowed with it.
    filtered = api.get(
        "accounts", params={"$select": "name", "$filter": "name eq 'A1'"}, headers={"Prefer": TRACK}
    )
    assert [r["name"] for r in filtered.json()["value"]] == ["A1"]

    for link in (delta_link, mid_chain, "accounts?$select=name&$deltatoken=1!01/01/2030 00:00:00"):
        refused = api.get(link)
        assert refused.status_code == 400, link
        assert refused.json()["error"]["code"] == "0x80044352"

    # Contacts still track; reset turns change tracking back on.
    _, contacts = follow(api, "contacts?$select=fullname", TRACK)
    assert "@odata.deltaLink" in contacts
    sim.control.reset()
    _, again = follow(api, "accounts?$select=name", TRACK)
    assert "@odata.deltaLink" in again


def test_change_tracking_switch_checks_its_input(sim: SimulatorHandle) -> None:
    with pytest.raises(SimulatorError, match="table must be one of"):
        sim.control.set_change_tracking("lead", False)
    with pytest.raises(SimulatorError, match="enabled must be true or false"):
        sim.control._call("POST", "/change-tracking/table", {"table": "account", "enabled": 0})


def test_formatted_values_come_with_changes_and_the_delta_link_stays(
    sim: SimulatorHandle, api: httpx.Client, follow: Callable[..., Any]
) -> None:
    """What acctsync asks by default (shared/dataverse/client.py): change tracking, pages and
    every annotation it reads. Choices, yes/no, owners, parent customers, money and dates come
    labelled on every page and in the deltas, and the chain still ends with its delta link."""
    prefer = f"{TRACK},odata.maxpagesize=2,{include_annotations(formatted=True)}"
    (account,) = sim.control.create_accounts(
        [{"name": "Contoso", "industrycode": 30, "donotemail": True, "revenue": 25000.0}]
    )
    sim.control.create_accounts([{"name": f"Other {i}"} for i in range(3)])
    columns = "name,industrycode,donotemail,revenue,_ownerid_value,modifiedon"
    pages, last = follow(api, f"accounts?$select={columns}", prefer)
    assert len(pages) == 2 and "@odata.deltaLink" in last
    row = next(r for r in rows_of(pages) if r["accountid"] == account)
    labels = {k.split("@")[0]: v for k, v in row.items() if k.endswith(f"@{FORMATTED_VALUE}")}
    assert labels["industrycode"] == "Transportation" and row["industrycode"] == 30
    assert labels["donotemail"] == "Do Not Allow" and row["donotemail"] is True
    assert labels["revenue"] == "$25,000.00"
    assert labels["_ownerid_value"] == "Alex Wilber"
    assert labels["modifiedon"].endswith(("AM", "PM"))
    # On every page, not only the first.
    assert all(f"_ownerid_value@{FORMATTED_VALUE}" in r for r in rows_of(pages))

    (contact,) = sim.control.create_contacts(
        [{"lastname": "Ann", "parentcustomerid": account, "parentcustomertype": "account"}]
    )
    sim.control.update_account(account, {"industrycode": 7})
    delta = api.get(last["@odata.deltaLink"], headers={"Prefer": prefer}).json()
    (changed,) = delta["value"]
    assert changed[f"industrycode@{FORMATTED_VALUE}"] == "Consulting"
    assert "@odata.deltaLink" in delta
    contacts, end = follow(api, "contacts?$select=lastname,_parentcustomerid_value", prefer)
    (ann,) = [r for r in rows_of(contacts) if r["contactid"] == contact]
    assert ann[f"_parentcustomerid_value@{FORMATTED_VALUE}"] == "Contoso"
    assert "@odata.deltaLink" in end
