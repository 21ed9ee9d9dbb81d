"""Claim 4: storage (Azurite) stopped and restarted during a cycle.

Azurite keeps its data in a folder and comes back on the same ports, as a restarted storage
emulator or a storage outage would. The cycle that was running either waits the outage out or
fails with a clear message (never a traceback); the next cycle completes, and the mirror equals
a clean run of the same data.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from typing import Any

from acctsync.azurite import Azurite, start_azurite
from acctsync.ports import free_port
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.sync.cycle import queue_backlog
from tests.faults.changes import change_dynamics, org_from_mirror
from tests.utils.faults import (
    ACCTSYNC,
    ROOT,
    Figures,
    Oracle,
    assert_same_mirror,
    clean_cycle,
    counts,
    run,
    services_for,
    snapshot,
    sync_summary,
    wait_until,
)


class Storage:
    """One Azurite on fixed ports with its data on disk, stopped and started by the test."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ports: dict[str, Any] = {
            "blob_port": free_port(),
            "queue_port": free_port(),
            "table_port": free_port(),
        }
        self.azurite: Azurite = self._start()

    def _start(self) -> Azurite:
        return start_azurite(
            **self.ports, location=self.folder / "data", log_file=self.folder / "azurite.log"
        )

    def outage(self, seconds: float) -> None:
        self.azurite.stop()  # SIGTERM: Azurite saves its data and exits
        time.sleep(seconds)
        self.azurite = self._start()

    def stop(self) -> None:
        self.azurite.stop()


def outcome(cycle: subprocess.Popen[str], started: float, outage_s: float) -> str:
    """Whether the cycle "waited" or "failed cleanly"; anything else fails the test."""
    _, stderr = cycle.communicate(timeout=300)
    assert "Traceback" not in stderr, stderr[-3000:]
    if cycle.returncode == 0:
        assert time.monotonic() - started >= outage_s  # it was still running: it waited
        return "waited"
    assert cycle.returncode == 1, (cycle.returncode, stderr[-2000:])
    # The last line says what to fix: storage gone when the command noticed, or a planning
    # step that failed on it (recorded once storage was back).
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("acctsync: ") and "AzureWebJobsStorage" in last, stderr[-2000:]
    return "failed cleanly"


def start_cycle(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ACCTSYNC, "cycle"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_storage_outage_during_planning_and_applying(
    simulator: SimulatorHandle,
    services: Services,
    twin: Services,
    env: dict[str, str],
    figures: Figures,
    tmp_path: Path,
    oracle: Oracle,
) -> None:
    storage = Storage(tmp_path)
    try:
        env = {
            **env,
            "AzureWebJobsStorage": storage.azurite.connection_string,
            "ACCTSYNC_LEASE_SECONDS": "2",
            "ACCTSYNC_WORKER_LEASE_SECONDS": "5",
        }
        faulty = services_for(env)
        control = simulator.control
        control.reset(accounts=50, contacts=500, seed=41)
        clean_cycle(twin)
        seen: list[dict[str, object]] = []

        # 1. Storage goes away while the cycle plans: slow Dataverse answers keep it planning.
        control.inject_faults(slow_ms=1000, slow_rate=1.0)
        cycle, started = start_cycle(env), time.monotonic()
        wait_until(lambda: queue_backlog(faulty) > 0, timeout=60, what="a batch enqueued")
        storage.outage(2)
        control.clear_faults()
        seen.append({"during": "planning", "outage_s": 2, "cycle": outcome(cycle, started, 2)})
        sync_summary(run(["cycle"], env))
        assert_same_mirror(faulty, twin)

        # 2. Storage goes away for longer while the cycle applies the batches of a delta.
        org = org_from_mirror(twin)
        change_dynamics(simulator, org, random.Random(5), size=30, tag="delta")
        clean_cycle(twin)
        cycle, started = start_cycle(env), time.monotonic()
        wait_until(lambda: faulty.schedule.read().phase == "applying", timeout=60, what="applying")
        storage.outage(6)
        seen.append({"during": "applying", "outage_s": 6, "cycle": outcome(cycle, started, 6)})
        sync_summary(run(["cycle"], env))
        assert_same_mirror(faulty, twin)

        # 3. Storage that stays away: the command says so and stops, without a traceback.
        down = {
            **env,
            "AzureWebJobsStorage": env["AzureWebJobsStorage"]
            .replace(str(storage.ports["table_port"]), str(free_port()))
            .replace(str(storage.ports["queue_port"]), str(free_port())),
        }
        refused = run(["status"], down, timeout=120)
        assert refused.returncode == 1, refused.stderr[-2000:]
        assert "Traceback" not in refused.stderr
        assert "acctsync: storage" in refused.stderr and "AzureWebJobsStorage" in refused.stderr
        seen.append({"during": "start", "outage_s": "lasting", "cycle": "failed cleanly"})
        figures.record(
            "storage_outage",
            outages=seen,
            mirror=counts(snapshot(twin)),
            next_cycle_completed=True,
            equal_to_clean_run=True,
        )
        oracle.verify(faulty)  # the mirror under test is in this storage, not `services`'
        faulty.close()
    finally:
        storage.stop()
