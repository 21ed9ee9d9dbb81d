"""Progress people can read: rich bars on a terminal (a pty), plain lines off it."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time

from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.storage import BATCH_QUEUE
from shared.sync.cycle import Action, heartbeat
from tests.utils.faults import ACCTSYNC, ROOT, run


def _on_a_terminal(env: dict[str, str]) -> tuple[int, str]:
    """`acctsync cycle` with its output on a pseudo-terminal; its exit code and output."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*ACCTSYNC, "cycle"], cwd=ROOT, env=env, stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other side closed: the process ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_a_first_load_shows_bars_on_a_terminal_and_lines_off_it(
    simulator: SimulatorHandle, services: Services
) -> None:
    simulator.control.reset(accounts=30, contacts=300, seed=61)
    env = {**os.environ, "ACCTSYNC_PAGE_SIZE": "50", "COLUMNS": "120"}
    code, output = _on_a_terminal(env)
    assert code == 0, output[-2000:]
    # rich's bars: the table with its mode, rows read of the table's total, the bar itself.
    assert "contacts (initial)" in output and "300/300" in output, output[-2000:]
    assert "accounts (initial)" in output and "30/30" in output
    assert "batches applied" in output and "\x1b[" in output and "━" in output

    simulator.control.expire_delta_tokens()  # a re-load, this time with no terminal
    done = run(["cycle"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "rows read" in line]
    assert lines and "\x1b[" not in done.stderr
    assert "contacts (reload): 300 of 300 rows read" in lines[-1], lines


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _left_queued_by_a_stopped_host(simulator: SimulatorHandle, services: Services) -> int:
    """A first load whose contacts were read and enqueued by a host that stopped before it
    applied any: the batches it left on the queue."""
    simulator.control.reset(accounts=30, contacts=300, seed=62)
    planned = heartbeat(services, owner="a-host-that-stopped", force=True)
    assert planned.action is Action.PLANNED, planned
    left = services.storage.queue_length(BATCH_QUEUE)
    assert left > 0
    return left


def test_batch_counts_after_a_restart_equal_what_was_applied_on_a_terminal(
    simulator: SimulatorHandle, services: Services
) -> None:
    _left_queued_by_a_stopped_host(simulator, services)
    env = {**os.environ, "ACCTSYNC_PAGE_SIZE": "50", "COLUMNS": "160"}
    code, output = _on_a_terminal(env)
    assert code == 0, output[-2000:]
    frames = [ANSI.sub("", line) for line in output.splitlines() if "batches applied" in line]
    done, total = (int(n) for n in re.findall(r"(\d+)/(\d+)", frames[-1])[-1])
    summary = json.loads(ANSI.sub("", output).strip().splitlines()[-1])
    assert done == total == summary["batches"], frames[-3:]


def test_batch_counts_after_a_restart_equal_what_was_applied_off_a_terminal(
    simulator: SimulatorHandle, services: Services
) -> None:
    left = _left_queued_by_a_stopped_host(simulator, services)
    done = run(["cycle"], {**os.environ, "ACCTSYNC_PAGE_SIZE": "50"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    lines = [line for line in done.stderr.splitlines() if "batches applied" in line]
    counted = re.search(r"batches applied: ([\d,]+) of ([\d,]+)", lines[-1])
    assert counted is not None, lines
    assert counted.group(1) == counted.group(2) == f"{summary['batches']:,}", lines
    assert summary["batches"] > left  # the accounts were enqueued by this process
