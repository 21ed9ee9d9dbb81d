"""Values as Dynamics formats them (issue 24 item 7): option labels, lookup names and money
beside the raw values, display only. A cycle stores them; a label changing alone (a parent
account renamed) logs no Change Data Value; a local edit drops the label of the value it
replaces; and Dynamics withholding the delta link while labels are asked says what to do."""

from __future__ import annotations

import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.dataverse.problems import ChangeTrackingDisabled, DeltaLinkWithheld
from shared.mapping import labels_of
from shared.mirror.records import fields_of
from shared.services import Services, get_services, reset_services
from shared.sync.edits import edit_account_through_contact
from shared.sync.select_fields import edit_fields, select_fields
from tests.utils.helpers import TEST_ACTOR, make_account

COLUMNS = ["name", "industrycode", "revenue", "parentaccountid", "ownerid", "statecode"]


def test_a_cycle_stores_labels_beside_the_values_and_labels_alone_log_nothing(
    simulator: SimulatorHandle, services: Services
) -> None:
    (parent,) = simulator.control.create_accounts([{"name": "Fabrikam"}])
    account_id, contacts = make_account(
        simulator, "Contoso", 2, industrycode=30, parentaccountid=parent
    )
    select_fields(services, COLUMNS, actor=TEST_ACTOR)
    run_cycle_now(services)
    row = services.accounts.get(account_id)
    assert row is not None
    assert fields_of(row)["industrycode"] == 30  # the raw value stays the value
    assert labels_of(row) == {
        "industrycode": "Transportation",
        "parentaccountid": "Fabrikam",
        "ownerid": "Alex Wilber",
        "revenue": "$1,000.00",
        "statecode": "Active",
    }
    contact = services.contacts.get(contacts[0])
    assert contact is not None and labels_of(contact) == {"statecode": "Active"}

    # The parent renamed, the account saved again unchanged: only a label differs.
    simulator.control.update_account(parent, {"name": "Fabrikam Group"})
    simulator.control.update_account(account_id, {"name": "Contoso"})
    quiet = run_cycle_now(services)
    assert quiet.accounts_changed == 2 and quiet.activities_logged == 0
    assert all(services.activities.for_contact(c) == [] for c in contacts)
    row = services.accounts.get(account_id)
    assert row is not None and labels_of(row)["parentaccountid"] == "Fabrikam Group"

    # A value change logs its raw values, and brings its new label.
    simulator.control.update_account(account_id, {"industrycode": 7})
    assert run_cycle_now(services).activities_logged == 2
    (activity,) = services.activities.for_contact(contacts[0])
    assert (activity["field"], activity["old"], activity["new"]) == ("industrycode", 30, 7)
    row = services.accounts.get(account_id)
    assert row is not None and labels_of(row)["industrycode"] == "Consulting"

    # A local edit replaces the value: Dynamics' label of the old one no longer fits it.
    edit_account_through_contact(services, contacts[0], {"industrycode": 6})
    row = services.accounts.get(account_id)
    assert row is not None and fields_of(row)["industrycode"] == 6
    assert "industrycode" not in labels_of(row)
    assert labels_of(row)["parentaccountid"] == "Fabrikam Group"


def test_without_formatted_values_no_label_is_asked_nor_stored(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCTSYNC_FORMATTED_VALUES", "false")
    reset_services()
    plain = get_services()
    account_id, _ = make_account(simulator, "Contoso", 1, industrycode=30)
    run_cycle_now(plain)
    row = plain.accounts.get(account_id)
    assert row is not None and fields_of(row)["industrycode"] == 30
    assert labels_of(row) == {}


def test_accounts_mirrored_without_labels_get_them_silently_when_read_again(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCTSYNC_FORMATTED_VALUES", "false")
    reset_services()
    plain = get_services()
    account_id, _ = make_account(simulator, "Contoso", 2, industrycode=30)
    select_fields(plain, ["name", "industrycode"], actor=TEST_ACTOR)
    run_cycle_now(plain)
    monkeypatch.setenv("ACCTSYNC_FORMATTED_VALUES", "true")
    reset_services()
    labelled = get_services()
    edit_fields(
        labelled, add=["donotemail"], actor=TEST_ACTOR
    )  # the next cycle reads every account again
    cycle = run_cycle_now(labelled)
    assert cycle.activities_logged == 0
    row = labelled.accounts.get(account_id)
    assert row is not None
    assert labels_of(row) == {"industrycode": "Transportation", "donotemail": "Allow"}


def test_a_missing_delta_link_while_labels_are_asked_names_the_setting(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some orgs are reported to drop the delta link when annotations are asked with change
    tracking: that must not read as "change tracking is off", whose fix is already done."""
    make_account(simulator, "Contoso", 0)
    simulator.control.set_change_tracking("account", False)  # the server sends no delta link
    with services.dataverse() as client, pytest.raises(DeltaLinkWithheld) as withheld:
        list(client.changes("accounts", ["name"], link=None))
    assert "without a delta link" in str(withheld.value)
    assert "ACCTSYNC_FORMATTED_VALUES=false" in withheld.value.fix

    monkeypatch.setenv("ACCTSYNC_FORMATTED_VALUES", "false")
    reset_services()
    with get_services().dataverse() as client, pytest.raises(ChangeTrackingDisabled):
        list(client.changes("accounts", ["name"], link=None))
