"""A heartbeat that SIGKILLs its own process at one step of planning (claim 2).

    python -m tests.faults.crashing_planner STEP

STEP is `read` (a page read, nothing enqueued), `enqueued:N` (after the N-th batch was sent),
`all-enqueued` (every batch sent, delta links not committed), `committed` (links committed,
cycle not marked planned) or `planned` (planned, nothing applied). The process dies the way a
crashed host does: no finally blocks, no cleanup. Exit 3: the step never came; 4: the lease
stayed taken.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from shared.services import get_services
from shared.state import tables as state
from shared.sync import cycle
from shared.sync.cycle import heartbeat


def _die(step: str) -> None:
    print(f"killed at {step}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(step: str) -> None:
    name, _, count = step.partition(":")
    if name == "read":
        original_enqueue = cycle._Planner._enqueue

        def enqueue(self: Any, *args: Any, **kwargs: Any) -> None:
            _die(step)
            original_enqueue(self, *args, **kwargs)

        cycle._Planner._enqueue = enqueue  # type: ignore[method-assign]
    elif name == "enqueued":
        original_send = cycle._Planner._send
        sent = [0]

        def send(self: Any, batch: Any) -> None:
            original_send(self, batch)
            sent[0] += 1
            if sent[0] == int(count):
                _die(step)

        cycle._Planner._send = send  # type: ignore[method-assign]
    elif name in ("all-enqueued", "committed"):
        original_commit = state.Cursors.commit

        def commit(self: Any, *args: Any, **kwargs: Any) -> None:
            if name == "all-enqueued":
                _die(step)
            original_commit(self, *args, **kwargs)
            _die(step)

        state.Cursors.commit = commit  # type: ignore[method-assign]
    elif name == "planned":
        original_planned = state.CycleSchedule.planned

        def planned(self: Any, *args: Any, **kwargs: Any) -> None:
            original_planned(self, *args, **kwargs)
            _die(step)

        state.CycleSchedule.planned = planned  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown step {step!r}")


def main(step: str) -> int:
    arm(step)
    services = get_services()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outcome = heartbeat(services, owner=f"crashing-{step}", force=True)
        if outcome.action == "planned":
            print(f"planned without reaching {step}: {outcome.summary}", flush=True)
            return 3
        time.sleep(0.3)  # the previous crash's lease has not run out yet
    return 4


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
