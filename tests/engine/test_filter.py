"""The custom sync filter (`new_synctomkto`, Marketo's "Custom Dynamics Sync Filter") under a
running sync: only an explicit No keeps an account out; No → Yes mirrors it as a first load,
Yes → No keeps it marked and stale while its contacts go on syncing; a filter column that is
gone or unreadable filters nothing, and status says so."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import read_column
from shared.services import Services, get_services, reset_services
from tests.utils.helpers import make_account


def account(api: httpx.Client, account_id: str) -> dict[str, Any]:
    response = api.get(f"/api/accounts/{account_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def filter_status(api: httpx.Client) -> tuple[str, int]:
    status = api.get("/api/sync/status").json()
    return status["sync_filter"]["state"], status["filtered_accounts"]


def activities(services: Services, contacts: list[str]) -> list[dict[str, Any]]:
    return [a for c in contacts for a in services.activities.for_contact(c)]


def test_only_an_explicit_no_keeps_an_account_out_until_it_says_yes(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    # Empty: an account from before the column was added (Dynamics writes it on every save
    # since, so it stays null only on rows nobody saved).
    control.delete_column("new_synctomkto")
    empty_id, _ = make_account(simulator, "Empty", 1)
    control.restore_column("new_synctomkto")
    no_id, no_contacts = make_account(simulator, "Kept out", 2, new_synctomkto=False)
    yes_id, _ = make_account(simulator, "Yes", 1, new_synctomkto=True)
    first = run_cycle_now(services)
    assert first.status == "succeeded" and first.accounts_filtered == 1
    assert api.get(f"/api/accounts/{no_id}").status_code == 404
    for included in (yes_id, empty_id):
        assert account(api, included)["sync_filtered"] is False
    # Its contacts are mirrored as ever; their account is not.
    contact = api.get(f"/api/contacts/{no_contacts[0]}").json()
    assert (contact["accountid"], contact["account"]) == (no_id, None)
    assert filter_status(api) == ("active", 1)
    # The filter column is read, not mirrored: it is not among the selected fields.
    assert "new_synctomkto" not in account(api, yes_id)["fields"]

    control.update_account(no_id, {"new_synctomkto": True, "name": "Let in"})
    back = run_cycle_now(services)
    assert back.status == "succeeded" and back.modes["accounts"] == "delta"
    mirrored = account(api, no_id)
    assert mirrored["fields"]["name"] == "Let in" and mirrored["sync_filtered"] is False
    assert back.activities_logged == 0 and activities(services, no_contacts) == []
    assert filter_status(api) == ("active", 0)


def test_yes_to_no_keeps_the_account_marked_and_stale_while_contacts_sync(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    account_id, contacts = make_account(simulator, "Contoso", 2)  # the column's default: Yes
    run_cycle_now(services)
    assert account(api, account_id)["sync_filtered"] is False

    control.update_account(account_id, {"new_synctomkto": False, "name": "Contoso (out)"})
    out = run_cycle_now(services)
    assert out.accounts_filtered == 1 and out.activities_logged == 0
    kept = account(api, account_id)
    assert (kept["fields"]["name"], kept["sync_filtered"]) == ("Contoso", True)
    assert api.get(f"/api/contacts/{contacts[0]}").json()["account_sync_filtered"] is True
    assert filter_status(api) == ("active", 1)

    # Its later changes are not applied; its contacts' are.
    control.update_account(account_id, {"name": "Contoso Ltd", "revenue": 5.0})
    control.update_contact(contacts[0], {"lastname": "Moved on"})
    later = run_cycle_now(services)
    assert later.status == "succeeded" and later.activities_logged == 0
    assert account(api, account_id)["fields"]["name"] == "Contoso"
    assert read_column(services.contacts.get(contacts[0]) or {}, "lastname") == "Moved on"
    assert activities(services, contacts) == []
    edit = api.patch(f"/api/contacts/{contacts[1]}/account", json={"fields": {"name": "Local"}})
    assert (edit.status_code, edit.json()["error"]["code"]) == (409, "account_sync_filtered")

    # Yes again: Dynamics' values, as a first load of the account.
    control.update_account(account_id, {"new_synctomkto": True})
    again = run_cycle_now(services)
    synced = account(api, account_id)
    assert (synced["fields"]["name"], synced["sync_filtered"]) == ("Contoso Ltd", False)
    assert synced["fields"]["revenue"] == 5.0
    assert again.activities_logged == 0 and activities(services, contacts) == []
    assert filter_status(api) == ("active", 0)


def test_a_filter_column_deleted_or_unreadable_filters_nothing_and_says_so(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    out_id, _ = make_account(simulator, "Out", 1, new_synctomkto=False)
    marked_id, _ = make_account(simulator, "Marked", 1)
    run_cycle_now(services)
    control.update_account(marked_id, {"new_synctomkto": False})
    run_cycle_now(services)
    assert account(api, marked_id)["sync_filtered"] is True

    control.delete_column("new_synctomkto")
    gone = run_cycle_now(services)
    assert gone.status == "succeeded" and gone.modes["accounts"] == "reload"
    assert account(api, out_id)["sync_filtered"] is False  # mirrored now
    assert account(api, marked_id)["sync_filtered"] is False  # syncs again
    assert gone.activities_logged == 0
    status = api.get("/api/sync/status").json()
    assert status["sync_filter"]["state"] == "missing"
    assert "no column new_synctomkto" in status["sync_filter"]["detail"]
    assert status["filtered_accounts"] == 0

    control.restore_column("new_synctomkto")  # with the values it had
    back = run_cycle_now(services)
    assert back.accounts_filtered == 2
    assert account(api, out_id)["sync_filtered"] is True
    assert filter_status(api) == ("active", 2)

    control.set_column_secured("new_synctomkto", True)  # no profile grants the sync user
    control.update_account(out_id, {"name": "Out, renamed"})
    unreadable = run_cycle_now(services)
    assert unreadable.status == "succeeded" and unreadable.accounts_filtered == 0
    assert account(api, out_id)["fields"]["name"] == "Out, renamed"
    state, filtered = filter_status(api)
    assert (state, filtered) == ("unreadable", 0)
    why = api.get("/api/sync/status").json()["sync_filter"]["detail"]
    assert "field security profile" in why


def test_an_empty_setting_turns_the_filter_off(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    out_id, _ = make_account(simulator, "Out", 1, new_synctomkto=False)
    monkeypatch.setenv("SYNC_FILTER_COLUMN", "")
    reset_services()
    unfiltered = get_services()
    summary = run_cycle_now(unfiltered)
    assert summary.accounts_filtered == 0
    assert unfiltered.accounts.get(out_id) is not None
    found = unfiltered.filtered.filter()
    assert found is not None and found.state == "off"
