"""Heartbeats that SIGKILL their own process right after the N-th checkpoint of the verify
under way (a page, a round of partitions or a group saved), the way a crashed host dies: no
finally blocks, no cleanup.

    python -m tests.faults.crashing_verifier N

Exit 3: the verify finished before its N-th checkpoint; 4: the lease stayed taken.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from shared.services import get_services
from shared.sync.cycle import Action, heartbeat
from shared.verify import step
from shared.verify.progress import RunStore, VerifyRun


def arm(checkpoints: int) -> None:
    # A save after every unit (a host saves every few seconds): a kill right after a save
    # then loses no unit, and the test can say that nothing was read twice.
    step.SAVE_EVERY_S = 0.0
    original_save = RunStore.save
    saved = [0]

    def save(self: Any, run: VerifyRun) -> None:
        original_save(self, run)
        saved[0] += 1
        if saved[0] == checkpoints:
            table = run.current
            where = f"{table.entity_set} {table.stage.value}" if table else "repair"
            print(f"killed at checkpoint {checkpoints}: {where}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    RunStore.save = save  # type: ignore[method-assign]


def main(checkpoints: int) -> int:
    arm(checkpoints)
    services = get_services()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if heartbeat(services, owner="crashing-verify").action is Action.VERIFIED:
            print(f"verified without reaching checkpoint {checkpoints}", flush=True)
            return 3
        time.sleep(0.3)  # the previous crash's lease has not run out yet
    return 4


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
