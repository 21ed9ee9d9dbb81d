"""What the verify reports for its alerts and its schedule: the drift metric is the drift a
repair left, the first scheduled verify comes one interval after the first cycle that
succeeded (however many cycles follow), and every heartbeat says how long the mirror has gone
unverified, which a verify that fails does not reset."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from acctsync.runner import run_cycle_now, run_verify_now
from acctsync.sim.harness import SimulatorHandle
from shared import telemetry
from shared.mirror.records import bucket
from shared.services import Services
from shared.state.verify import VerifyTrigger
from shared.sync.cycle import Action, heartbeat
from shared.verify.requests import scheduled_due
from tests.utils.helpers import make_account, settle

Observed = list[tuple[str, float]]


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Observed:
    """Every histogram value acctsync records, in order."""
    values: Observed = []
    monkeypatch.setattr(telemetry, "observe", lambda name, value, **_: values.append((name, value)))
    return values


def last_value(observed: Observed, name: str) -> float:
    return [value for metric, value in observed if metric == name][-1]


def test_the_drift_metric_is_what_a_repair_left(
    simulator: SimulatorHandle, services: Services, observed: Observed
) -> None:
    _, contacts = make_account(simulator, "Contoso", 2)
    settle()
    run_cycle_now(services)
    services.contacts.table.delete_entity(bucket(contacts[0]), contacts[0])

    run_verify_now(services, repair=True, deep=False)
    # Found and mended: nothing is left for the alert to fire on.
    assert last_value(observed, "acctsync.verify_drift_found") == 1
    assert last_value(observed, "acctsync.verify_drift") == 0

    services.contacts.table.delete_entity(bucket(contacts[1]), contacts[1])
    run_verify_now(services, repair=False, deep=False)
    assert last_value(observed, "acctsync.verify_drift_found") == 1
    assert last_value(observed, "acctsync.verify_drift") == 1


def test_the_first_scheduled_verify_comes_an_interval_after_the_first_success(
    simulator: SimulatorHandle,
    services: Services,
    observed: Observed,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Cycles a week apart, so that the heartbeats below find none due.
    monkeypatch.setattr(
        services, "settings", replace(services.settings, sync_interval_minutes=10080)
    )
    make_account(simulator, "Contoso", 2)
    settle()
    run_cycle_now(services)
    first = services.schedule.read()
    due = scheduled_due(services, first)
    assert first.succeeded_at is not None and due == first.succeeded_at + timedelta(hours=24)
    # Cycles go on every few minutes: the first verify must not be put off by each of them.
    run_cycle_now(services)
    later = services.schedule.read()
    assert later.succeeded_at is not None and later.succeeded_at > first.succeeded_at
    assert scheduled_due(services, later) == due

    # Just before it is due, the heartbeat says how long the mirror has gone unverified.
    outcome = heartbeat(services, owner="test", now=due - timedelta(seconds=1))
    assert outcome.action is not Action.VERIFIED
    unverified = last_value(observed, "acctsync.since_last_verify_s")
    assert unverified == pytest.approx(24 * 3600 - 1, abs=1)

    outcome = heartbeat(services, owner="test", now=due + timedelta(seconds=1))
    assert outcome.action is Action.VERIFIED, outcome
    last = services.verifies.last()
    assert last is not None and last.trigger is VerifyTrigger.SCHEDULED and last.error is None
    heartbeat(services, owner="test", now=last.finished_at + timedelta(seconds=5))
    assert last_value(observed, "acctsync.since_last_verify_s") == pytest.approx(5, abs=1)
    assert scheduled_due(services, services.schedule.read()) == last.finished_at + timedelta(
        hours=24
    )

    # Scheduled verifies off: nothing is reported, so nothing can be called overdue.
    monkeypatch.setattr(services, "settings", replace(services.settings, verify_interval_hours=0))
    observed.clear()
    heartbeat(services, owner="test")
    assert "acctsync.since_last_verify_s" not in {name for name, _ in observed}
