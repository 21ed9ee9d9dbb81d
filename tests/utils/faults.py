"""What the fault tests share: the clean twin, mirror snapshots, draining, processes, figures.

Every claim is checked the same way: the run under faults and a clean run of the same
Dynamics data end with the same mirror, compared row for row and activity for activity.
The clean run uses a second Azurite (the twin), so both read the simulator at the same moments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from acctsync.runner import run_cycle_now, run_verify_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import to_json
from shared.services import Services
from shared.settings import Settings
from shared.state.results import CycleStatus
from shared.state.schedule import CyclePlan, Phase
from shared.state.summary import CycleSummary
from shared.state.verify import VerifyResult
from shared.storage import BATCH_QUEUE
from shared.sync.apply import apply_batch
from shared.sync.cycle import heartbeat, queue_backlog

ROOT = Path(__file__).resolve().parents[2]
ACCTSYNC = [sys.executable, "-m", "acctsync.cli"]
SOAK = os.environ.get("ACCTSYNC_SOAK") == "1"
FIGURES_FILE = ROOT / ".acctsync" / "faults.json"
# Written by the apply step at apply time, so they differ between two runs of the same data
# (`load_sync`: whether a first load's batch wrote the row, or its replay after the load).
VOLATILE = frozenset({"synced_at", "deleted_at", "load_sync"})
MIRROR_TABLES = ("accounts", "contacts", "members", "activities")

Snapshot = dict[str, dict[tuple[str, str], dict[str, Any]]]
T = TypeVar("T")


def scale(normal: int, soak: int) -> int:
    """A size for the normal suite, or the bigger one of the soak (ACCTSYNC_SOAK=1)."""
    return soak if SOAK else normal


def services_for(env: dict[str, str]) -> Services:
    """acctsync's services for explicit settings (a second storage next to the global one)."""
    return Services(Settings.from_env(env)).ready()


def snapshot(services: Services) -> Snapshot:
    """The mirror as plain values: accounts, contacts, memberships and activities."""
    tables = {
        "accounts": services.accounts.table,
        "contacts": services.contacts.table,
        "members": services.members.table,
        "activities": services.activities.table,
    }
    result: Snapshot = {}
    for name, table in tables.items():
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for entity in table.list_entities():
            key = (str(entity["PartitionKey"]), str(entity["RowKey"]))
            rows[key] = {
                k: to_json(v)
                for k, v in entity.items()
                if k not in VOLATILE and k not in ("PartitionKey", "RowKey")
            }
        result[name] = rows
    return result


def mirror_differences(got: Snapshot, expected: Snapshot, *, limit: int = 5) -> list[str]:
    """Readable differences between two snapshots; empty when they are the same."""
    problems: list[str] = []
    for name in MIRROR_TABLES:
        mine, theirs = got.get(name, {}), expected.get(name, {})
        missing = sorted(theirs.keys() - mine.keys())
        extra = sorted(mine.keys() - theirs.keys())
        changed = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
        if missing:
            problems.append(f"{name}: {len(missing)} missing, e.g. {missing[:limit]}")
        if extra:
            problems.append(f"{name}: {len(extra)} extra, e.g. {extra[:limit]}")
        for key in changed[:limit]:
            problems.append(f"{name} {key}: {mine[key]} != clean {theirs[key]}")
        if len(changed) > limit:
            problems.append(f"{name}: {len(changed)} rows differ in all")
    return problems


def assert_same_mirror(services: Services, clean: Services) -> Snapshot:
    """The mirror under test equals the clean run's, row for row; returns it."""
    got = snapshot(services)
    problems = mirror_differences(got, snapshot(clean))
    assert not problems, "the mirror differs from the clean run:\n" + "\n".join(problems)
    return got


def counts(shot: Snapshot) -> dict[str, int]:
    return {name: len(shot[name]) for name in MIRROR_TABLES}


def drain(services: Services) -> int:
    """Apply every queued batch in this process, like a worker that never fails."""
    queue = services.storage.queue(BATCH_QUEUE)
    applied = 0
    while True:
        messages = list(queue.receive_messages(max_messages=32, visibility_timeout=300))
        if not messages:
            return applied
        for message in messages:
            apply_batch(services, message.content)
            queue.delete_message(message)
            applied += 1


def clean_cycle(services: Services) -> CycleSummary:
    """One whole cycle with nothing going wrong: each stage planned and drained, then finished."""
    summary, _ = cycle_by_stages(services, lambda: drain(services), owner="clean-twin")
    return summary


def cycle_by_stages(
    services: Services, apply: Callable[[], T], *, owner: str = "faults"
) -> tuple[CycleSummary, list[T]]:
    """A whole cycle planned here, each stage's batches applied by `apply()` (which must empty
    the queue); returns the cycle's summary and what each `apply()` returned."""
    outcome = heartbeat(services, owner=owner, force=True)
    applied: list[T] = []
    while outcome.action in ("planned", "checkpointed"):
        applied.append(apply())
        assert queue_backlog(services) == 0
        outcome = heartbeat(services, owner=owner)
    assert outcome.action == "finished" and outcome.summary is not None, outcome
    return outcome.summary, applied


def plan_only(services: Services, owner: str = "faults") -> CyclePlan:
    """Plan the next cycle's first stage that has something to enqueue, and apply nothing."""
    planned = heartbeat(services, owner=owner, force=True)
    assert planned.action == "planned" and planned.plan is not None, planned
    return planned.plan


def assert_no_drift(services: Services, simulator: SimulatorHandle) -> VerifyResult | None:
    """The oracle every fault test ends with (issue 23): once the faults are off, what is
    queued is applied and, when the test left the mirror mid-way, one more cycle runs (what a
    user does after an incident); then a verify (no repair) finds no drift. None when no
    cycle ever ran on this storage: there is no mirror to verify."""
    simulator.control.clear_faults()
    if not services.schedule.read().cycle_id and not services.history.latest(1):
        return None
    drain(services)
    if _mid_way(services):
        recovery = run_cycle_now(services)
        assert recovery.status == CycleStatus.SUCCEEDED, f"the recovery cycle: {recovery}"
    result = run_verify_now(services, repair=False, deep=False)
    assert result.error is None, f"the verify failed: {result.error}"
    assert result.drift == 0, drift_report(result)
    return result


@dataclass
class Oracle:
    """Issue 23: after a test that used the `services` fixture, the verify of its storage.
    A test whose mirror lives in another storage verifies that one itself (`verify`)."""

    simulator: SimulatorHandle | None = None
    done: bool = False

    def verify(self, services: Services) -> None:
        assert self.simulator is not None, "the oracle verifies tests that use the simulator"
        assert_no_drift(services, self.simulator)
        self.done = True


def _mid_way(services: Services) -> bool:
    """A cycle (or verify) under way, batches still queued (a killed worker's come back
    later), or a last cycle that did not succeed."""
    if services.schedule.read().phase is not Phase.IDLE or queue_backlog(services):
        return True
    latest = services.history.latest(1)
    return not latest or latest[0].status is not CycleStatus.SUCCEEDED


def drift_report(result: VerifyResult) -> str:
    """What a verify found, by kind and table, with the drifted ids it kept as samples."""
    found = result.to_json()
    samples = "\n".join(f"  {s['table']} {s['id']}: {s['kind']}" for s in found["sample_drift"])
    return (
        f"verify {result.id} found {result.drift} drift after recovery: "
        f"by kind {found['by_kind']}, by table {found['by_table']}, "
        f"pending {found['pending_by_table']}, checked {found['checked']}\n{samples}"
    )


def wait_until(condition: Any, *, timeout: float, every: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(every)


@dataclass
class Process:
    """A child process whose stdout lines are collected as they come."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each line
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], stderr: IO[str] | int) -> Process:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            # As started from a terminal: a suite run in the background (nohup, `&`) has
            # SIGINT ignored, and Python leaves an ignored SIGINT ignored, so Ctrl-C would not
            # reach the process under test.
            preexec_fn=_default_sigint,
        )
        process = cls(popen)
        process._reader = threading.Thread(target=process._read, daemon=True)
        process._reader.start()
        return process

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.times.append(time.monotonic())
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, *, timeout: float) -> None:
        wait_until(
            lambda: (
                any(line.startswith(prefix) for line in self.lines) or self.popen.poll() is not None
            ),
            timeout=timeout,
            what=f"a line starting {prefix!r}",
        )
        if not any(line.startswith(prefix) for line in self.lines):
            raise AssertionError(f"the process ended ({self.popen.returncode}): {self.lines}")

    def finish(self, timeout: float = 30) -> int:
        code = self.popen.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code


def run(
    args: list[str], env: dict[str, str], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ACCTSYNC, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`acctsync ARGS` in a child process, with this process's environment unless `env`."""
    return run(list(args), dict(os.environ) if env is None else env)


def sync_summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


class Figures:
    """Numbers the tests measured, merged into .acctsync/faults.json for the docs to quote."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def record(self, claim: str, **values: Any) -> None:
        self.data.setdefault(claim, {}).update(values)

    def write(self) -> None:
        if not self.data:
            return
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        existing: dict[str, Any] = {}
        if FIGURES_FILE.exists():
            try:
                existing = json.loads(FIGURES_FILE.read_text())
            except ValueError:
                existing = {}
        existing.update(self.data)
        existing["_written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        existing["_soak"] = SOAK
        FIGURES_FILE.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def iter_history(services: Services) -> Iterator[dict[str, Any]]:
    """Every finished cycle, however many."""
    rows = services.history.table.query_entities("PartitionKey eq @p", parameters={"p": "history"})
    for row in rows:
        yield json.loads(row["summary"])


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
