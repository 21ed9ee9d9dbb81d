"""The API shows values as Dynamics formats them (issue 24 item 7) beside the raw `fields`,
which stay what the contract says: `formatted` on an account, a contact and the lists, and the
selected columns' display names on an account."""

from __future__ import annotations

import httpx

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.sync.select_fields import select_fields
from tests.utils.helpers import TEST_ACTOR, make_account


def test_accounts_and_contacts_answer_labels_beside_raw_values(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 1, industrycode=30)
    select_fields(services, ["name", "industrycode", "revenue", "ownerid"], actor=TEST_ACTOR)
    run_cycle_now(services)

    account = api.get(f"/api/accounts/{account_id}").json()
    assert account["fields"]["industrycode"] == 30  # raw, as the contract says
    assert account["fields"]["ownerid"].count("-") == 4  # the owner's GUID
    assert account["formatted"] == {
        "industrycode": "Transportation",
        "revenue": "$1,000.00",
        "ownerid": "Alex Wilber",
    }
    assert account["display_names"] == {
        "name": "Account Name",
        "industrycode": "Industry",
        "revenue": "Annual Revenue",
        "ownerid": "Owner",
    }

    contact = api.get(f"/api/contacts/{contacts[0]}").json()
    assert contact["fields"]["statecode"] == 0 and contact["formatted"] == {"statecode": "Active"}
    assert contact["account"]["industrycode"] == 30
    assert contact["account_formatted"]["industrycode"] == "Transportation"

    (item,) = api.get("/api/accounts").json()["items"]
    assert item["formatted"]["ownerid"] == "Alex Wilber"
    (person,) = api.get("/api/contacts").json()["items"]
    assert person["formatted"] == {"statecode": "Active"}
