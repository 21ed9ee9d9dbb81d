"""A first load sends its search-index entries apart from its rows (batches of their own,
grouped by index partition): after the cycle every record is found, each entry once."""

from __future__ import annotations

import httpx

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from tests.utils.feed import api_get, follow
from tests.utils.helpers import make_account


def test_a_first_load_through_a_cycle_is_searchable(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    ids = [make_account(simulator, f"Account {n}", 2)[0] for n in range(3)]
    summary = run_cycle_now(services)
    assert summary.modes == {"accounts": "initial", "contacts": "initial"}
    found = follow(api_get(api, "/api/accounts", search="account", limit=2))
    assert sorted(i["accountid"] for i in found) == sorted(ids)
    people = follow(api_get(api, "/api/contacts", search="ACCOUNT 1 PERSON"))
    assert len(people) == 2
    # Two entries for each contact (name, email if any) and one for each account, none twice.
    entries = list(services.search.table.list_entities(select=["RowKey"]))
    assert len(entries) == len({e["RowKey"] for e in entries}) >= 3 + 6
