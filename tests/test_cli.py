"""The `acctsync` command as a user runs it: a real process, the environment as settings."""

from __future__ import annotations

import json
import os
import time

from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import bucket, fields_of
from shared.services import Services
from tests.utils.faults import cli
from tests.utils.helpers import make_account, unstorable_accounts


def test_cycle_prints_its_summary_last(simulator: SimulatorHandle, services: Services) -> None:
    make_account(simulator, "Contoso", 2)
    done = cli("cycle")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "accounts_changed",
        "contacts_changed",
        "batches",
        "activities_logged",
        "activities_suppressed",
        "errors",
    ):
        assert key in summary
    assert (summary["accounts_changed"], summary["contacts_changed"]) == (1, 2)
    status = json.loads(cli("status").stdout)
    assert status["last_cycles"][0]["cycle_id"] == summary["cycle_id"]
    assert status["queue_backlog"] == 0


def test_fields_list_and_select(simulator: SimulatorHandle, services: Services) -> None:
    listed = cli("fields", "list")
    assert listed.returncode == 0, listed.stderr
    fields = {f["name"]: f for f in json.loads(listed.stdout)}
    # The contract's keys, then why a column is not readable and its Dataverse limits.
    assert set(fields["name"]) == {
        "name",
        "type",
        "display_name",
        "readable",
        "secured",
        "selected",
        "why",
        "limits",
    }
    assert fields["creditlimit"]["readable"] is False and fields["creditlimit"]["why"]
    assert fields["name"]["limits"]["max_length"] == 160

    refused = cli("fields", "select", "name,creditlimit,bogus")
    assert refused.returncode != 0
    assert "creditlimit" in refused.stderr and "bogus" in refused.stderr
    still = {f["name"]: f["selected"] for f in json.loads(cli("fields", "list").stdout)}
    assert still == {name: f["selected"] for name, f in fields.items()}

    chosen = cli("fields", "select", "name,revenue")
    assert chosen.returncode == 0, chosen.stderr
    selected = [f["name"] for f in json.loads(cli("fields", "list").stdout) if f["selected"]]
    assert sorted(selected) == ["name", "revenue"]


def test_missing_settings_are_explained() -> None:
    env = {"PATH": os.environ["PATH"], "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    done = cli("cycle", env=env)
    assert done.returncode == 2
    assert "DATAVERSE_URL is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_retry_errors_prints_what_was_resolved(
    simulator: SimulatorHandle, services: Services
) -> None:
    fixed_id, broken_id = unstorable_accounts(simulator, services)
    done = cli("retry-errors", "--code", "unstorable_value")
    assert done.returncode == 1, done.stderr  # one still fails
    *lines, last = done.stdout.strip().splitlines()
    counts = json.loads(last)
    assert (counts["retried"], counts["resolved"], counts["still_failing"]) == (2, 1, 1)
    assert f"account {fixed_id}: resolved" in lines
    assert any(line.startswith(f"account {broken_id}: still failing:") for line in lines)
    row = services.accounts.get(fixed_id)
    assert row is not None and fields_of(row)["new_longnotes"] == "Short notes"

    by_id = cli("retry-errors", "--id", fixed_id)
    assert by_id.returncode == 0 and json.loads(by_id.stdout.splitlines()[-1])["retried"] == 0
    unknown = cli("retry-errors", "--code", "nope")
    assert unknown.returncode == 2 and "unstorable_value" in unknown.stderr


def test_verify_exits_by_the_drift_left_and_prints_its_result_last(
    simulator: SimulatorHandle, services: Services
) -> None:
    account_id, _ = make_account(simulator, "Contoso", 1)
    time.sleep(1.1)  # past the second of the changes: they are not pending
    assert cli("cycle").returncode == 0
    clean = cli("verify")
    assert clean.returncode == 0, clean.stderr
    result = json.loads(clean.stdout.strip().splitlines()[-1])
    for key in ("drift", "by_kind", "samples", "repaired", "checked", "dataverse_requests"):
        assert key in result
    assert (result["drift"], result["checked"]) == (0, {"contacts": 1, "accounts": 1})
    assert "drift: 0" in clean.stderr
    services.accounts.table.delete_entity(bucket(account_id), account_id)
    drifted = cli("verify", "--json")
    assert drifted.returncode == 1 and drifted.stderr == ""
    found = json.loads(drifted.stdout.strip().splitlines()[-1])
    assert (found["by_kind"]["missing"], found["samples"]) == (1, [account_id])
    repaired = cli("verify", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert json.loads(repaired.stdout.strip().splitlines()[-1])["repaired"] == 1
    status = json.loads(cli("status").stdout)
    assert status["verify"]["last"]["drift_left"] == 0
