"""When a failed cycle is tried again: a failure that needs someone to act (refused
credentials, a missing privilege) a whole interval later, so a wrong secret is not sent to
Entra ID every minute; any other a minute later."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.state.schedule import Failure
from shared.sync.cycle import _retry_at, heartbeat
from tests.utils.faults import services_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def failure(*, needs_action: bool) -> Failure:
    return Failure(NOW, "contacts", "it failed", "the fix", needs_action=needs_action)


def test_a_failure_that_needs_action_is_retried_an_interval_later_at_least_a_minute() -> None:
    assert _retry_at(failure(needs_action=True), NOW, 30) == NOW + timedelta(minutes=30)
    assert _retry_at(failure(needs_action=True), NOW, 0.25) == NOW + timedelta(minutes=1)


def test_any_other_failure_is_retried_a_minute_later() -> None:
    assert _retry_at(failure(needs_action=False), NOW, 30) == NOW + timedelta(minutes=1)


def test_a_refused_secret_is_tried_again_a_whole_interval_later(
    simulator: SimulatorHandle, services: Services
) -> None:
    wrong = services_for(
        {**os.environ, "DATAVERSE_CLIENT_SECRET": "not-the-secret", "SYNC_INTERVAL_MINUTES": "30"}
    )
    try:
        assert heartbeat(wrong, owner="test", force=True).action == "failed"
        closed = heartbeat(wrong, owner="test")
        assert closed.summary["status"] == "failed"
        state = wrong.schedule.read()
        assert state.next_due is not None and state.finished_at is not None
        assert state.next_due - state.finished_at >= timedelta(minutes=29)
        # Heartbeats in the meantime start nothing: no request goes to Entra ID.
        later = heartbeat(wrong, owner="test", now=state.finished_at + timedelta(minutes=5))
        assert later.action == "idle"
    finally:
        wrong.close()
