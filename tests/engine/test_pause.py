"""Pause and resume (Marketo's Disable and Enable Sync): queued batches still apply, no cycle
or step starts, the pause outlasts a restart, and resuming catches up with nothing lost."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
from azure.data.tables import TableEntity

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import read_column
from shared.services import Services
from shared.sync.cycle import heartbeat
from tests.utils.faults import drain, run, services_for
from tests.utils.helpers import make_account


def test_pause_across_a_restart_then_resume_with_nothing_lost(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    control = simulator.control
    account_id, contacts = make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    control.update_contact(contacts[0], {"lastname": "Moved"})
    control.update_account(account_id, {"name": "Contoso Ltd"})
    planned = heartbeat(services, owner="host-1", force=True)
    assert (planned.action, planned.step) == ("planned", "contacts")

    paused = api.post("/api/sync/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True
    status = api.get("/api/sync/status").json()
    assert status["paused"] is True and status["paused_since"] == paused.json()["paused_since"]

    # What was queued still applies...
    assert drain(services) >= 1
    assert read_column(services.contacts.get(contacts[0]) or {}, "lastname") == "Moved"
    # ...but the cycle's next step does not start, here or on a host started afresh.
    assert heartbeat(services, owner="host-1").action == "paused"
    restarted = services_for(dict(os.environ))
    try:
        assert heartbeat(restarted, owner="host-2", force=True).action == "paused"
    finally:
        restarted.close()
    refused = run(["cycle"], dict(os.environ))
    assert refused.returncode == 1 and "paused" in refused.stderr
    assert "acctsync resume" in refused.stderr
    assert (services.accounts.get(account_id) or TableEntity())["f_name"] == "Contoso"

    control.update_account(account_id, {"accountnumber": "A-100"})  # changed while paused
    resumed = run(["resume"], dict(os.environ))
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["paused"] is False
    summary = run_cycle_now(services)
    assert summary.status == "succeeded" and summary.modes["accounts"] == "delta"
    account: dict[str, Any] = services.accounts.get(account_id) or {}
    assert (account["f_name"], account["f_accountnumber"]) == ("Contoso Ltd", "A-100")
    fields = {a["field"] for c in contacts for a in services.activities.for_contact(c)}
    assert fields == {"name", "accountnumber"}
    shown = json.loads(run(["status"], dict(os.environ)).stdout)
    assert shown["paused"] is False and shown["paused_since"] is None


def test_pausing_twice_keeps_the_first_time_and_resume_is_idempotent(
    services: Services, api: httpx.Client
) -> None:
    first = api.post("/api/sync/pause").json()
    again = run(["pause"], dict(os.environ))
    assert json.loads(again.stdout)["paused_since"] == first["paused_since"]
    assert api.post("/api/sync/resume").json() == {
        "paused": False,
        "paused_since": None,
        "was_paused_since": first["paused_since"],
    }
    assert api.post("/api/sync/resume").json()["was_paused_since"] is None
    assert heartbeat(services, owner="host", force=True).action != "paused"
