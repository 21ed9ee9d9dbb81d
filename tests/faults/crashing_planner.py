"""A heartbeat that SIGKILLs its own process at one step of planning (claim 2).

    python -m tests.faults.crashing_planner STEP

STEP is `read` (a page read, nothing enqueued), `enqueued:N` (after the N-th batch was sent),
`checkpointed:N` (after the N-th page's checkpoint was written), `all-enqueued` (every batch
of a table sent, its delta link not committed), `committed` (the link committed, the step not
marked planned) or `planned` (planned, nothing applied). The process dies the way a crashed
host does: no finally blocks, no cleanup. Exit 3: the step never came; 4: the lease stayed
taken.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from shared.services import get_services
from shared.state.cursors import Cursors
from shared.state.schedule import Phase
from shared.sync.cycle import heartbeat
from shared.sync.lease import CycleLease
from shared.sync.sender import BatchSender


def _die(step: str) -> None:
    print(f"killed at {step}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(step: str) -> None:
    name, _, count = step.partition(":")
    if name == "read":
        original_add = BatchSender.add

        def add(self: Any, *args: Any, **kwargs: Any) -> None:
            _die(step)
            original_add(self, *args, **kwargs)

        BatchSender.add = add  # type: ignore[method-assign]
    elif name == "enqueued":
        original_send = BatchSender._send
        sent = [0]

        def send(self: Any, packed: Any) -> None:
            original_send(self, packed)
            sent[0] += 1
            if sent[0] == int(count):
                _die(step)

        BatchSender._send = send  # type: ignore[method-assign]
    elif name == "checkpointed":
        original_write = CycleLease.write
        written = [0]

        def write(self: Any, **changes: Any) -> None:
            original_write(self, **changes)
            checkpoints = changes.get("checkpoints") or {}
            if any(c.next_link for c in checkpoints.values()) and "phase" not in changes:
                written[0] += 1
                if written[0] == int(count):
                    _die(step)

        CycleLease.write = write  # type: ignore[method-assign]
    elif name in ("all-enqueued", "committed"):
        original_commit = Cursors.commit

        def commit(self: Any, *args: Any, **kwargs: Any) -> None:
            if name == "all-enqueued":
                _die(step)
            original_commit(self, *args, **kwargs)
            _die(step)

        Cursors.commit = commit  # type: ignore[method-assign]
    elif name == "planned":
        original_release = CycleLease.release

        def release(self: Any, **changes: Any) -> None:
            original_release(self, **changes)
            if changes.get("phase") is Phase.APPLYING:
                _die(step)

        CycleLease.release = release  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown step {step!r}")


def main(step: str) -> int:
    arm(step)
    services = get_services()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outcome = heartbeat(services, owner=f"crashing-{step}", force=True)
        if outcome.action == "planned":
            print(f"planned without reaching {step}: {outcome.plan}", flush=True)
            return 3
        time.sleep(0.3)  # the previous crash's lease has not run out yet
    return 4


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
