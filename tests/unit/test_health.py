"""The health verdict over a table of situations (pure: no storage, no server)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.state.liveness import Beat, HeldBatch, Hold
from shared.state.schedule import Failure, Step
from shared.sync.health import HealthFacts, Verdict, decide

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
HOST = "host-a:101"


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# A sync that works: the last cycle succeeded a minute ago, the host beat 10 s ago.
WELL = HealthFacts(
    now=NOW,
    interval=timedelta(minutes=5),
    running=False,
    stage=None,
    cycle_started=True,
    succeeded_at=ago(60),
    failures_in_a_row=0,
    failing=None,
    blamed=None,
    running_failed=False,
    moved_at=None,
    backlog=0,
    beat=Beat(ago(10), 30.0, HOST),
)
APPLYING = replace(WELL, running=True, stage="applying contacts", moved_at=ago(20), backlog=182)


def hold(*, process: str = "host-b:7", renewed: float = 5, back_in: float = 40) -> Hold:
    batches = tuple(HeldBatch(f"m{n}", "c20261201", f"b{n:04d}") for n in range(1, 10))
    return Hold("w-1", process, ago(renewed), 10.0, NOW + timedelta(seconds=back_in), batches)


NEEDS_ACTION = Failure(ago(30), Step.CONTACTS, "AADSTS7000215: invalid secret", "set it", True)

SITUATIONS = {
    "working": (WELL, Verdict.HEALTHY, None),
    "never ran, no host yet": (
        replace(WELL, cycle_started=False, succeeded_at=None, beat=None),
        Verdict.HEALTHY,
        None,
    ),
    "acctsync cycle without a host": (replace(WELL, beat=None), Verdict.HEALTHY, None),
    "heartbeat a bit late": (replace(WELL, beat=Beat(ago(64), 30.0, HOST)), Verdict.HEALTHY, None),
    "host killed while applying": (
        replace(APPLYING, beat=Beat(ago(70), 30.0, HOST)),
        Verdict.HOST_DOWN,
        "no heartbeat for 70 s: the host is down",
    ),
    "a long planning heartbeat renews its lease": (
        replace(WELL, running=True, beat=Beat(ago(200), 30.0, HOST), lease_renewed_at=ago(15)),
        Verdict.HEALTHY,
        None,
    ),
    "a planner killed: its lease is no longer renewed": (
        replace(WELL, running=True, beat=Beat(ago(200), 30.0, HOST), lease_renewed_at=ago(120)),
        Verdict.HOST_DOWN,
        "no heartbeat for 120 s",
    ),
    "batches of a worker that stopped renewing": (
        replace(APPLYING, holds=(hold(renewed=35),)),
        Verdict.RECOVERING,
        "9 batches held by a stopped worker (w-1), back by 12:00:40 UTC (in 40 s): "
        "cycle c20261201 b0001, b0002, b0003, b0004, b0005, ...",
    ),
    "a live worker's batches": (replace(APPLYING, holds=(hold(renewed=5),)), Verdict.HEALTHY, None),
    "the dead host's own workers, at once": (
        replace(APPLYING, beat=Beat(ago(70), 30.0, HOST), holds=(hold(process=HOST, renewed=5),)),
        Verdict.HOST_DOWN,
        "no heartbeat for 70 s: the host is down; 9 batches held by a stopped worker",
    ),
    "batches already back are not named": (
        replace(APPLYING, holds=(hold(renewed=90, back_in=-5),)),
        Verdict.HEALTHY,
        None,
    ),
    "a stage with batches queued and none applied": (
        replace(APPLYING, moved_at=ago(13 * 60), invisible=9),
        Verdict.STALLED,
        "no progress in applying contacts for 13 min (9 batches invisible on the queue",
    ),
    "a long stage that applies": (replace(APPLYING, moved_at=ago(30)), Verdict.HEALTHY, None),
    "a failure that needs someone": (
        replace(WELL, failing=NEEDS_ACTION, blamed=NEEDS_ACTION, failures_in_a_row=1),
        Verdict.STALLED,
        "planning contacts fails: AADSTS7000215: invalid secret; 1 failed cycles in a row",
    ),
    "no cycle succeeded for long": (
        replace(WELL, succeeded_at=ago(3600)),
        Verdict.STALLED,
        "no cycle has succeeded for 60 minutes",
    ),
}


@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_verdict(name: str) -> None:
    facts, verdict, why = SITUATIONS[name]
    health = decide(facts)
    assert health.verdict is verdict, health
    if why is None:
        assert health.why is None
    else:
        assert health.why is not None and health.why.startswith(why), health.why


def test_host_down_says_what_to_do_and_keeps_the_json_keys() -> None:
    facts = replace(APPLYING, beat=Beat(ago(70), 30.0, HOST), holds=(hold(process=HOST),))
    health = decide(facts).to_json()
    assert health["verdict"] == "host_down"
    assert "acctsync run" in health["fix"] and "Function App" in health["fix"]
    assert health["heartbeat_at"] == "2026-12-01T11:58:50Z" and health["heartbeat_age_s"] == 70.0
    assert health["held_batches"] == [
        {
            "worker": "w-1",
            "back_at": "2026-12-01T12:00:40Z",
            "cycle_id": "c20261201",
            "batches": [f"b{n:04d}" for n in range(1, 10)],
        }
    ]
    assert {"verdict", "why", "fix", "last_success_at", "stalled_after_s"} <= health.keys()
    assert health["stalled_after_s"] == 20 * 60


def test_back_by_is_never_a_moment_before_the_batches_are_back() -> None:
    # A message comes back at 12:00:40.3; "back by 12:00:40" would name a moment it is still away.
    facts = replace(
        APPLYING, beat=Beat(ago(70), 30.0, HOST), holds=(hold(process=HOST, back_in=40.3),)
    )
    health = decide(facts)
    assert health.to_json()["held_batches"][0]["back_at"] == "2026-12-01T12:00:41Z"
    assert health.why is not None and "back by 12:00:41 UTC" in health.why
    # And named until that second: a list that emptied at 12:00:00.3 would say they were back
    # while the text a moment before said not until 12:00:01 (CI failed on it).
    back_soon = replace(facts, holds=(hold(process=HOST, back_in=0.3),))  # shown: 12:00:01
    assert decide(replace(back_soon, now=NOW + timedelta(seconds=0.5))).held
    assert not decide(replace(back_soon, now=NOW + timedelta(seconds=1))).held


def test_a_failure_fix_comes_with_stalled() -> None:
    facts = replace(WELL, failing=NEEDS_ACTION, blamed=NEEDS_ACTION, failures_in_a_row=1)
    assert decide(facts).fix == "set it"
    assert decide(WELL).fix is None
