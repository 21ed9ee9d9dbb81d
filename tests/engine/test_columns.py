"""Columns that come and go under a running sync: a selected column deleted in Dynamics and
brought back, a column that becomes secured, a contact column the org does not have. The
sync goes on every time, keeps what it cannot read, and says so in status and `fields list`."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import read_column
from shared.services import Services
from tests.utils.faults import run
from tests.utils.helpers import make_account


def fields_list() -> dict[str, dict[str, Any]]:
    """`acctsync fields list`, as a user runs it, by column name."""
    done = run(["fields", "list"], dict(os.environ))
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


def account_value(services: Services, account_id: str, column: str) -> Any:
    account = services.accounts.get(account_id)
    assert account is not None
    return read_column(account, column)


def test_a_deleted_column_keeps_its_values_and_syncs_again_once_back(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    account_id, contacts = make_account(simulator, "Contoso", 3, new_longnotes="Key account")
    chosen = api.put("/api/sync/fields", json={"selected": ["name", "new_longnotes"]})
    assert chosen.status_code == 200, chosen.text
    run_cycle_now(services)
    assert account_value(services, account_id, "new_longnotes") == "Key account"

    assert "new_longnotes" in control.delete_column("new_longnotes")
    control.update_account(account_id, {"name": "Contoso Ltd"})
    gone = run_cycle_now(services)
    # The sync went on with the other columns, on a new chain without the column...
    assert gone.status == "succeeded" and gone.modes["accounts"] == "reload"
    assert account_value(services, account_id, "name") == "Contoso Ltd"
    # ...logging the one real change only, and keeping the values it can no longer read.
    assert gone.activities_logged == len(contacts)
    assert account_value(services, account_id, "new_longnotes") == "Key account"
    status = api.get("/api/sync/status").json()
    assert status["unreadable_fields"] == ["new_longnotes"]
    assert "no longer exists" in status["unreadable_columns"]["account"]["new_longnotes"]
    listed = fields_list()["new_longnotes"]
    assert (listed["readable"], listed["selected"]) == (False, True)
    assert "no longer exists" in listed["why"]
    served = {row["name"]: row["readable"] for row in api.get("/api/sync/fields").json()}
    assert served == {name: row["readable"] for name, row in fields_list().items()}

    control.restore_column("new_longnotes")
    control.update_account(account_id, {"new_longnotes": "Key account since 2019"})
    back = run_cycle_now(services)
    assert back.status == "succeeded" and back.backfill == ("new_longnotes",)
    assert account_value(services, account_id, "new_longnotes") == "Key account since 2019"
    assert back.activities_logged == 0  # a backfill logs nothing
    assert fields_list()["new_longnotes"]["readable"] is True
    assert api.get("/api/sync/status").json()["unreadable_fields"] == []
    assert run_cycle_now(services).modes["accounts"] == "delta"  # and on from there


def test_a_column_secured_under_the_sync_is_never_blanked(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    account_id, contacts = make_account(simulator, "Contoso", 2, revenue=25000.0)
    run_cycle_now(services)  # Marketo's default columns, revenue among them
    assert account_value(services, account_id, "revenue") == 25000.0

    # Column security turned on, no profile grants the sync user read: Dynamics now sends
    # null for revenue on every row it returns.
    control.set_column_secured("revenue", True)
    control.update_account(account_id, {"name": "Contoso Ltd", "revenue": 30000.0})
    secured = run_cycle_now(services)
    assert secured.status == "succeeded"
    assert secured.unreadable_fields == ("revenue",)
    assert account_value(services, account_id, "revenue") == 25000.0  # not blanked
    logged = [a for c in contacts for a in services.activities.for_contact(c)]
    assert {a["field"] for a in logged} == {"name"}  # no change to null was logged
    why = api.get("/api/sync/status").json()["unreadable_columns"]["account"]["revenue"]
    assert "field security profile" in why
    assert fields_list()["revenue"]["readable"] is False

    control.set_column_read("app", "revenue", True)  # a profile now grants it
    granted = run_cycle_now(services)
    assert granted.backfill == ("revenue",) and granted.unreadable_fields == ()
    assert account_value(services, account_id, "revenue") == 30000.0
    assert granted.activities_logged == 0


def test_a_contact_column_the_org_lacks_is_left_out(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    """An org whose contact table has no job title (a Dataverse without the Sales columns):
    every cycle used to fail with `400 Could not find a property named 'jobtitle'`."""
    control = simulator.control
    _, contacts = make_account(simulator, "Contoso", 2)
    control.update_contact(contacts[0], {"jobtitle": "Buyer"})
    run_cycle_now(services)
    assert read_column(services.contacts.get(contacts[0]) or {}, "jobtitle") == "Buyer"

    control.delete_column("jobtitle", table="contact", absent=True)
    control.update_contact(contacts[0], {"lastname": "Smith"})
    cycle = run_cycle_now(services)
    assert cycle.status == "succeeded" and cycle.contacts_changed >= 1
    contact = services.contacts.get(contacts[0])
    assert contact is not None
    assert read_column(contact, "lastname") == "Smith"
    assert read_column(contact, "jobtitle") == "Buyer"  # kept, not blanked
    status = api.get("/api/sync/status").json()
    assert "jobtitle" in status["unreadable_columns"]["contact"]
    assert status["unreadable_fields"] == []  # the account columns are all fine
