"""Health that is true within one heartbeat (issue 24): a local host (`acctsync run`) killed with
SIGKILL while it applies a load reads as "host down" within about two heartbeats, not
"healthy"; the batches its workers held are named, with when they come back, until they do;
and they come back within about a minute, so a new worker applies them and the cycle
succeeds."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from acctsync.ports import free_port
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.state.schedule import Phase
from shared.state.summary import CycleSummary
from shared.sync.cycle import Action, heartbeat, queue_backlog
from shared.sync.health import BEAT_SLACK_S, MISSED_BEATS
from shared.sync.status import sync_status
from shared.times import parse_iso, utcnow
from tests.utils.faults import ACCTSYNC, Figures, Oracle, Process, wait_until

HEARTBEAT_S = 1.0
VISIBILITY_S = 60  # the local worker's default: "about a minute"


def _health(services: Services) -> dict[str, Any]:
    health: dict[str, Any] = sync_status(services).health.to_json()
    return health


def _holding(services: Services) -> bool:
    """The host's workers hold batches while a stage is being applied."""
    held = any(hold.batches for hold in services.liveness.holds())
    return held and services.schedule.read().phase is Phase.APPLYING


def _finish_cycle(services: Services, *, timeout: float) -> CycleSummary:
    """Drive heartbeats here (the host is dead) until the running cycle has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = heartbeat(services, owner="after-the-crash")
        if outcome.action is Action.FINISHED and outcome.summary is not None:
            return outcome.summary
        time.sleep(0.5)
    raise AssertionError("the cycle did not finish after the crash")


def test_a_killed_host_is_down_within_a_heartbeat_and_its_batches_come_back(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    env: dict[str, str],
    figures: Figures,
    tmp_path: Path,
) -> None:
    simulator.control.reset(accounts=250, contacts=2500, seed=24)
    host_env = {
        **env,
        "ACCTSYNC_API_PORT": str(free_port()),
        "ACCTSYNC_API_KEY": "host-down-test-key",
        "ACCTSYNC_HEARTBEAT_SECONDS": str(HEARTBEAT_S),
    }
    host_env.pop("ACCTSYNC_WORKER_LEASE_SECONDS", None)
    with (tmp_path / "host.log").open("a") as log:
        host = Process.start([*ACCTSYNC, "run"], host_env, log)
        try:
            wait_until(lambda: _holding(services), timeout=120, every=0.05, what="batches held")
            before = _health(services)
        finally:
            host.popen.send_signal(signal.SIGKILL)
        killed_at, killed = time.monotonic(), utcnow()
        assert host.finish() == -signal.SIGKILL
        # A first load that moves on, with the host beating: healthy.
        assert before["verdict"] == "healthy", before
        assert before["heartbeat_age_s"] is not None and before["heartbeat_age_s"] < 5

        down = wait_until(
            lambda: (h := _health(services))["verdict"] == "host_down" and h,
            timeout=30,
            every=0.2,
            what="host_down",
        )
        seconds_to_down = time.monotonic() - killed_at
        assert seconds_to_down <= MISSED_BEATS * HEARTBEAT_S + BEAT_SLACK_S + 2.0
        assert down["why"].startswith("no heartbeat for ") and "the host is down" in down["why"]
        assert "acctsync run" in down["fix"]
        # The dead host's batches are named at once, with when they come back.
        held = down["held_batches"]
        assert held, down
        named = {batch for group in held for batch in group["batches"]}
        for group in held:
            back = (parse_iso(group["back_at"]) - killed).total_seconds()
            assert 0 < back <= VISIBILITY_S + 1, group
            assert f"back by {parse_iso(group['back_at']):%H:%M:%S} UTC" in down["why"]
        assert "held by a stopped worker" in down["why"]

        # Named for as long as they are away: until the last one is back.
        last_back = max(parse_iso(group["back_at"]) for group in held)
        while utcnow() < last_back:
            still = _health(services)
            if utcnow() < last_back:
                assert still["held_batches"], still
            time.sleep(2.0)
        assert not _health(services)["held_batches"]

        # A new worker applies them: the whole cycle succeeds, about a minute after the kill.
        worker = Process.start([*ACCTSYNC, "worker"], host_env, log)
        try:
            worker.wait_for_line("worker ready", timeout=60)
            wait_until(lambda: queue_backlog(services) == 0, timeout=120, what="the backlog")
            seconds_to_applied = time.monotonic() - killed_at
            summary = _finish_cycle(services, timeout=300)
        finally:
            worker.popen.send_signal(signal.SIGTERM)
        assert worker.finish(timeout=30) == 0
    assert summary.status == "succeeded", summary
    assert summary.batches_applied == summary.batches, summary
    # The held batches were applied again, within about a minute of the kill.
    assert seconds_to_applied <= VISIBILITY_S + 30
    oracle.verify(services)  # faults over: the mirror equals Dynamics
    figures.record(
        "host_sigkill",
        heartbeat_s=HEARTBEAT_S,
        seconds_to_host_down=round(seconds_to_down, 1),
        batches_held_by_the_dead_host=len(named),
        seconds_to_held_batches_applied=round(seconds_to_applied, 1),
        worker_visibility_s=VISIBILITY_S,
    )
