"""Claim 1: the apply worker killed with SIGKILL in the middle of batches, again and again, then
restarted, loses no record and logs no activity twice.

The worker is a real process (`acctsync worker`) serving the batch queue on Azurite; the test
kills it at random moments while it applies a large initial load and then a delta of changes,
restarts it, and at the end compares the mirror with a clean run of the same data.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.state.summary import CycleSummary
from shared.sync.cycle import queue_backlog
from tests.faults.changes import change_dynamics, org_from_mirror
from tests.utils.faults import (
    ACCTSYNC,
    Figures,
    Oracle,
    Process,
    assert_same_mirror,
    clean_cycle,
    counts,
    cycle_by_stages,
    scale,
    snapshot,
    wait_until,
)

WORKER_LEASE_S = 6  # a killed worker's messages come back after this long


def _applied(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith("applied "))


def _batch_seconds(worker: Process, durations: list[float]) -> float:
    """How long a batch takes to apply, from the worker's own applying/applied lines."""
    started: dict[str, float] = {}
    for line, at in zip(list(worker.lines), list(worker.times), strict=False):
        event, _, message_id = line.partition(" ")
        if event == "applying":
            started[message_id] = at
        elif event == "applied" and message_id in started:
            durations.append(at - started.pop(message_id))
    recent = durations[-20:]
    return sum(recent) / len(recent) if recent else 1.0


def kill_until_drained(
    services: Services, env: dict[str, str], rng: random.Random, log: Path
) -> dict[str, int]:
    """Start the worker, SIGKILL it at a random moment, repeat until the queue is empty."""
    env = {**env, "ACCTSYNC_WORKER_LEASE_SECONDS": str(WORKER_LEASE_S)}
    tally = {"kills": 0, "kills_mid_batch": 0, "batches_applied": 0, "restarts": 0}
    deadline = time.monotonic() + scale(240, 3000)
    durations: list[float] = []
    with log.open("a") as stderr:
        while queue_backlog(services):
            assert time.monotonic() < deadline, "the queue never drained"
            worker = Process.start([*ACCTSYNC, "worker", "--visibility-timeout", "1"], env, stderr)
            tally["restarts"] += 1
            try:
                worker.wait_for_line("worker ready", timeout=60)
                # Let it apply 0 or 1 batch, then kill it a random part of a batch later:
                # most kills land inside a batch, and the load still moves on.
                ready = len(worker.lines)
                wanted = rng.randint(0, 1)
                wait_until(
                    lambda w=worker, r=ready, n=wanted: (
                        _applied(w.lines[r:]) >= n or not queue_backlog(services)
                    ),
                    timeout=60,
                    what=f"{wanted} batches applied",
                )
                time.sleep(rng.uniform(0.0, 1.2) * _batch_seconds(worker, durations))
            finally:
                worker.popen.send_signal(signal.SIGKILL)  # also when the test fails meanwhile
            code = worker.finish()
            assert code == -signal.SIGKILL
            tally["kills"] += 1
            events = [line.split()[0] for line in worker.lines if line.split()]
            tally["batches_applied"] += events.count("applied")
            if events and events[-1] == "applying":
                tally["kills_mid_batch"] += 1  # it died between reading and deleting a batch
            if "applying" not in events:
                # Nothing visible: the last kill's batches are still leased. Let them return.
                time.sleep(1.0)
        # The queue is empty: one clean stop proves the worker also stops when asked.
        last = Process.start([*ACCTSYNC, "worker"], env, stderr)
        tally["restarts"] += 1
        try:
            last.wait_for_line("worker ready", timeout=60)
        finally:
            last.popen.send_signal(signal.SIGTERM)
        assert last.finish(timeout=30) == 0
    return tally


def test_worker_killed_mid_batch_again_and_again(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    twin: Services,
    env: dict[str, str],
    figures: Figures,
    tmp_path: Path,
) -> None:
    rng = random.Random(1)
    accounts, contacts = scale(250, 2500), scale(2500, 25000)
    simulator.control.reset(accounts=accounts, contacts=contacts, seed=11)
    log = tmp_path / "worker.log"

    def kill_stage_by_stage() -> tuple[CycleSummary, dict[str, int]]:
        """A whole cycle, each stage applied by a worker that keeps getting killed."""
        summary, stages = cycle_by_stages(
            services, lambda: kill_until_drained(services, env, rng, log)
        )
        return summary, {key: sum(stage[key] for stage in stages) for key in stages[0]}

    # The initial load.
    clean_cycle(twin)
    _, initial = kill_stage_by_stage()

    # Changes in Dynamics, then the delta, applied the same way.
    org = org_from_mirror(twin)
    made = change_dynamics(simulator, org, rng, size=scale(40, 400), tag="changed")
    clean_summary = clean_cycle(twin)
    summary, delta = kill_stage_by_stage()

    assert_same_mirror(services, twin)
    got, clean = snapshot(services), snapshot(twin)
    assert counts(clean)["activities"] > 0  # the delta logged activities to compare
    kills = initial["kills"] + delta["kills"]
    mid_batch = initial["kills_mid_batch"] + delta["kills_mid_batch"]
    assert mid_batch >= 5, (initial, delta)
    oracle.verify(services)  # faults over: the mirror equals Dynamics
    figures.record(
        "worker_sigkill",
        accounts=accounts,
        contacts=contacts,
        changes=made,
        sigkills=kills,
        sigkills_mid_batch=mid_batch,
        worker_starts=initial["restarts"] + delta["restarts"],
        mirror=counts(got),
        equal_to_clean_run=True,
        # A batch killed after its writes and redelivered finds them done: the cycle summary
        # counts only what the redelivery did (reported, not asserted).
        delta_activities_reported=summary.activities_logged,
        delta_activities_reported_by_clean_run=clean_summary.activities_logged,
    )
