"""When a failed cycle is tried again: a failure that needs someone to act (refused
credentials, a missing privilege) a whole interval later, so a wrong secret is not sent to
Entra ID every minute; any other a minute later (the pure decision is tested in
tests/unit/test_cycle_close.py)."""

from __future__ import annotations

import os
from datetime import timedelta

from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.sync.cycle import heartbeat
from tests.utils.faults import services_for
from tests.utils.helpers import summary_of


def test_a_refused_secret_is_tried_again_a_whole_interval_later(
    simulator: SimulatorHandle, services: Services
) -> None:
    wrong = services_for(
        {**os.environ, "DATAVERSE_CLIENT_SECRET": "not-the-secret", "SYNC_INTERVAL_MINUTES": "30"}
    )
    try:
        assert heartbeat(wrong, owner="test", force=True).action == "failed"
        closed = heartbeat(wrong, owner="test")
        assert summary_of(closed).status == "failed"
        state = wrong.schedule.read()
        assert state.next_due is not None and state.finished_at is not None
        assert state.next_due - state.finished_at >= timedelta(minutes=29)
        # Heartbeats in the meantime start nothing: no request goes to Entra ID.
        later = heartbeat(wrong, owner="test", now=state.finished_at + timedelta(minutes=5))
        assert later.action == "idle"
    finally:
        wrong.close()
