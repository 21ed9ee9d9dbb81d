"""Numbers that are right: change lag counts only changes (not the age of rows a first load or
a re-load copies), and a paused sync has no next cycle due."""

from __future__ import annotations

import httpx

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from tests.utils.helpers import make_account


def test_change_lag_counts_only_changes(simulator: SimulatorHandle, services: Services) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 3)
    first = run_cycle_now(services)
    assert first.change_lag_s.rows == 0 and first.change_lag_s.mean_s is None
    simulator.control.update_account(account_id, {"name": "Contoso Ltd"})
    changed = run_cycle_now(services)
    lag = changed.change_lag_s
    assert (
        lag.rows == 1 and lag.mean_s is not None and 0 <= lag.mean_s < 600
    )  # seconds, not the demo data's age
    simulator.control.expire_delta_tokens()  # a re-load copies every row again
    simulator.control.update_contact(contacts[0], {"lastname": "Moved"})
    reloaded = run_cycle_now(services)
    assert reloaded.modes["contacts"] == "reload"
    assert reloaded.change_lag_s.rows == 0


def test_a_paused_sync_has_no_next_cycle_due(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    assert api.get("/api/sync/status").json()["next_due"] is not None
    assert api.post("/api/sync/pause").is_success
    assert api.get("/api/sync/status").json()["next_due"] is None
    assert api.post("/api/sync/resume").is_success
    assert api.get("/api/sync/status").json()["next_due"] is not None
