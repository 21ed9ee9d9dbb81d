"""Local edits within the column's own limits: a value Dynamics itself could not hold (past
MaxLength, outside MinValue/MaxValue, more decimals than Precision, not one of the options, an
empty required column) is a 422 that names the limit, and nothing changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from tests.utils.helpers import make_account

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"name": "x" * 161}, "MaxLength"),  # account name: 160 characters in Dataverse
    ({"name": "\U0001f600" * 81}, "MaxLength"),  # 162 UTF-16 units, as .NET counts them
    ({"name": None}, "required"),
    ({"revenue": -1}, "MinValue"),
    ({"revenue": 100_000_000_000_001}, "MaxValue"),
    ({"revenue": 10.125}, "Precision"),
    ({"numberofemployees": 1_000_000_001}, "MaxValue"),
    ({"industrycode": 999}, "option values"),
    ({"statecode": 7}, "option values"),
    ({"name": "fits", "accountnumber": "A" * 21}, "MaxLength"),  # one bad, nothing applied
]


@pytest.fixture
def contact(simulator: SimulatorHandle, services: Services) -> tuple[str, str]:
    account_id, contacts = make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    return account_id, contacts[0]


@pytest.mark.parametrize(
    ("fields", "limit"), REFUSED, ids=[r[1] + str(i) for i, r in enumerate(REFUSED)]
)
def test_a_value_dynamics_could_not_hold_is_refused_naming_the_limit(
    api: httpx.Client, contact: tuple[str, str], fields: dict[str, Any], limit: str
) -> None:
    account_id, contact_id = contact
    before = api.get(f"/api/accounts/{account_id}").json()
    response = api.patch(f"/api/contacts/{contact_id}/account", json={"fields": fields})
    assert response.status_code == 422, response.text
    assert limit in response.json()["error"]["message"]
    assert api.get(f"/api/accounts/{account_id}").json() == before


def test_values_at_the_limits_are_accepted(api: httpx.Client, contact: tuple[str, str]) -> None:
    account_id, contact_id = contact
    fields = {
        "name": "x" * 160,
        "revenue": 100_000_000_000_000,
        "numberofemployees": 0,
        "industrycode": 33,
        "statecode": 1,
        "accountnumber": None,  # not required: may be emptied
    }
    response = api.patch(f"/api/contacts/{contact_id}/account", json={"fields": fields})
    assert response.status_code == 200, response.text
    assert api.get(f"/api/accounts/{account_id}").json()["fields"]["name"] == "x" * 160
    listed = {c["name"]: c for c in api.get("/api/sync/fields").json()}
    assert listed["name"]["limits"] == {"required": True, "max_length": 160}
