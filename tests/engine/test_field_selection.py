"""Field selection that does not surprise: `fields select` replaces the selection and says what
it added and removed; `fields add` / `fields remove` change only what they name, with the same
refusals; columns selected again are refreshed by one re-read of the accounts, not one re-sync
per column."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from acctsync.cli import main
from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.dataverse.columns import DEFAULT_ACCOUNT_COLUMNS
from shared.mapping import read_column
from shared.services import Services
from shared.sync.select_fields import list_fields
from tests.utils.helpers import make_account


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    """`acctsync ARGS` in this process: exit code, stdout's JSON (None if empty), stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def selected(services: Services) -> list[str]:
    stored = services.fields.get()
    assert stored is not None
    return list(stored.columns)


def test_select_says_what_it_added_and_removed(
    simulator: SimulatorHandle, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = cli(capsys, "fields", "list")  # stores Marketo's default columns
    assert code == 0
    code, out, err = cli(capsys, "fields", "select", "name,telephone1")
    assert code == 0, err
    dropped = [c for c in DEFAULT_ACCOUNT_COLUMNS if c not in ("name", "telephone1")]
    assert out["removed"] == dropped and out["added"] == []
    assert "removed " + ", ".join(dropped) in err and "values are kept" in err

    code, out, err = cli(capsys, "fields", "select", "name,telephone1,websiteurl")
    assert (code, out["added"], out["removed"]) == (0, ["websiteurl"], [])
    assert "added websiteurl" in err and "removed" not in err


def test_select_help_says_it_replaces(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fields", "select", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "every other column stops syncing" in text and "fields add" in text


def test_add_and_remove_change_only_what_they_name(
    simulator: SimulatorHandle, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "fields", "select", "name,telephone1,websiteurl")[0] == 0
    code, out, err = cli(capsys, "fields", "add", "description,revenue")
    assert code == 0, err
    assert selected(services) == ["name", "telephone1", "websiteurl", "description", "revenue"]
    assert (out["added"], out["removed"]) == (["description", "revenue"], [])
    code, out, err = cli(capsys, "fields", "remove", "telephone1")
    assert code == 0, err
    assert selected(services) == ["name", "websiteurl", "description", "revenue"]
    assert out["removed"] == ["telephone1"] and "removed telephone1" in err

    # The same refusals as select, naming each column; nothing changes.
    before = services.fields.get()
    code, _, err = cli(capsys, "fields", "add", "nosuchcolumn,creditlimit,telephone1")
    assert code == 1 and "nothing changed" in err
    assert "nosuchcolumn" in err and "cannot read creditlimit" in err
    code, _, err = cli(capsys, "fields", "remove", "nosuchcolumn")
    assert code == 1 and "unknown account columns: nosuchcolumn" in err
    code, _, err = cli(capsys, "fields", "remove", "name,websiteurl,description,revenue")
    assert code == 1 and "at least one" in err
    assert services.fields.get() == before

    # A selected column the sync user lost stays selected while others are added and removed.
    simulator.control.set_column_read("app", "creditlimit", True)
    assert cli(capsys, "fields", "add", "creditlimit")[0] == 0
    simulator.control.set_column_read("app", "creditlimit", False)
    run_cycle_now(services)  # finds creditlimit unreadable and reports it
    assert cli(capsys, "fields", "select", "name,creditlimit")[0] == 1  # select checks all
    code, out, err = cli(capsys, "fields", "add", "telephone1")
    assert code == 0, err
    assert "creditlimit" in selected(services) and "telephone1" in selected(services)
    code, out, err = cli(capsys, "fields", "remove", "creditlimit")
    assert (code, out["removed"]) == (0, ["creditlimit"])


def test_selecting_twelve_columns_again_costs_one_reread(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    account_id, contacts = make_account(simulator, "Contoso", 2, telephone1="555-0100")
    readable = [c["name"] for c in list_fields(services) if c["readable"]]
    extra = [c for c in readable if c not in DEFAULT_ACCOUNT_COLUMNS]
    everything = [*DEFAULT_ACCOUNT_COLUMNS, *extra][:14]
    dropped = [c for c in everything if c not in ("name", "revenue")]
    assert len(dropped) == 12
    assert api.put("/api/sync/fields", json={"selected": everything}).is_success
    run_cycle_now(services)
    edit = api.patch(f"/api/contacts/{contacts[0]}/account", json={"fields": {"telephone1": "x"}})
    assert edit.status_code == 200, edit.text
    narrowed = api.put("/api/sync/fields", json={"selected": ["name", "revenue"]}).json()
    assert narrowed["removed"] == dropped
    control.update_account(account_id, {"telephone1": "555-0199", "description": "new"})
    run_cycle_now(services)  # not synced now: the mirror keeps the stale values
    assert read_column(services.accounts.get(account_id) or {}, "telephone1") == "x"

    again = api.put("/api/sync/fields", json={"selected": everything}).json()
    assert again["added"] == dropped and again["backfill"] == dropped
    control.requests(clear=True)
    activities = sum(len(services.activities.for_contact(c)) for c in contacts)
    for _ in range(3):  # whatever it queued has run after these
        run_cycle_now(services)
    account_reads = [
        e
        for e in control.requests()
        if e["listener"] == "webapi"
        and e["path"].endswith("/accounts")
        and "token" not in e["query"].lower()  # a first page: not a delta or a next page
    ]
    assert len(account_reads) == 1, account_reads
    assert api.get("/api/sync/status").json()["resyncs"] == []
    row = services.accounts.get(account_id)
    assert row is not None
    assert (read_column(row, "telephone1"), read_column(row, "description")) == ("555-0199", "new")
    view = api.get(f"/api/accounts/{account_id}").json()
    assert view["locally_modified"] == []
    assert sum(len(services.activities.for_contact(c)) for c in contacts) == activities


def test_an_edit_refuses_columns_in_the_words_the_cli_uses(
    simulator: SimulatorHandle,
    services: Services,
    api: httpx.Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, contacts = make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    code, _, cli_says = cli(capsys, "fields", "add", "creditlimit,nosuchcolumn")
    assert code == 1
    edit = api.patch(
        f"/api/contacts/{contacts[0]}/account",
        json={"fields": {"creditlimit": 5, "nosuchcolumn": "x", "telephone1": "555"}},
    )
    assert edit.status_code == 422, edit.text
    message = edit.json()["error"]["message"]
    # Secured: not readable, and why; unknown: does not exist; the CLI's very sentences.
    unreadable = "the Dynamics sync user cannot read creditlimit: column security is on"
    unknown = "unknown account columns: nosuchcolumn (`acctsync fields list`"
    assert unreadable in message and unreadable in cli_says
    assert unknown in message and unknown in cli_says
    assert "not a selected account field" not in message
    # A readable column the selection lacks is told to be selected.
    edit = api.patch(f"/api/contacts/{contacts[0]}/account", json={"fields": {"donotemail": True}})
    assert "'donotemail' is not a selected account field" in edit.json()["error"]["message"]
