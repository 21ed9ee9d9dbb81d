"""Claim 2: a cycle killed at any step between reading the changes and committing the delta
links (and just after) is recovered by the next cycle: nothing lost, nothing duplicated.

Each crash is a real process killed with SIGKILL at a chosen step of planning (see
crashing_planner.py). The lease it leaves behind runs out after ACCTSYNC_LEASE_SECONDS, as an
operator would shorten it; then `acctsync cycle` recovers. After each recovery the mirror equals
a clean run of the same data, activity for activity.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from typing import Any

from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.sync.cycle import queue_backlog
from tests.faults.changes import change_dynamics, org_from_mirror
from tests.utils.faults import (
    ROOT,
    Figures,
    Oracle,
    assert_same_mirror,
    clean_cycle,
    counts,
    run,
    scale,
    snapshot,
    sync_summary,
)

LEASE_S = "1"


def crash(env: dict[str, str], step: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.crashing_planner", step],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, (step, done.returncode, done.stdout, done.stderr)
    assert f"killed at {step}" in done.stdout


def test_cycle_killed_at_every_step_then_recovered(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    twin: Services,
    env: dict[str, str],
    figures: Figures,
) -> None:
    env = {**env, "ACCTSYNC_LEASE_SECONDS": LEASE_S}
    accounts, contacts = scale(100, 1500), scale(1000, 15000)
    simulator.control.reset(accounts=accounts, contacts=contacts, seed=21)
    rng = random.Random(2)
    rounds: list[dict[str, Any]] = []

    def recover_and_compare(steps: list[str]) -> None:
        leftover = queue_backlog(services)
        summary = sync_summary(run(["cycle"], env))
        assert queue_backlog(services) == 0
        assert_same_mirror(services, twin)
        rounds.append(
            {"killed_at": steps, "batches_left_by_crashes": leftover, "recovery": summary["modes"]}
        )

    # The initial load, killed again and again before its links are committed.
    clean_cycle(twin)
    initial_steps = ["read", "enqueued:1", "enqueued:5", "all-enqueued"]
    for step in initial_steps:
        crash(env, step)
    recover_and_compare(initial_steps)

    # Deltas: each round changes Dynamics, crashes at some steps, and recovers.
    org = org_from_mirror(twin)
    for steps in (["enqueued:1", "all-enqueued"], ["committed"], ["planned"]):
        change_dynamics(simulator, org, rng, size=scale(25, 200), tag=f"round {len(rounds)}")
        clean_cycle(twin)
        for step in steps:
            crash(env, step)
        recover_and_compare(steps)

    final = counts(snapshot(twin))
    assert final["activities"] > 0
    figures.record(
        "cycle_sigkill",
        accounts=accounts,
        contacts=contacts,
        crashes=sum(len(r["killed_at"]) for r in rounds),
        steps=sorted({s.split(":")[0] for r in rounds for s in r["killed_at"]}),
        rounds=rounds,
        mirror=final,
        equal_to_clean_run=True,
        lease_seconds=float(LEASE_S),
    )
    oracle.verify(services)  # faults over: the mirror equals Dynamics
