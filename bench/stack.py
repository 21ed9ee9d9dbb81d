"""The bench's own Azurite and Dataverse simulator, and acctsync runs in child processes.

acctsync runs in a child process (`python -m bench.child`) so that its peak RSS and CPU time
are its own, not the bench's, Azurite's or the simulator's.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from acctsync.azurite import Azurite, start_azurite
from acctsync.sim.harness import SimulatorHandle, start_simulator
from bench import counting

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    """One simulator for the whole run; Azurite restarted per scenario (fresh and in memory)."""

    sim: SimulatorHandle
    azurite: Azurite | None = None

    def fresh_azurite(self, *, max_heap_mb: int | None = None) -> Azurite:
        """A new, empty in-memory Azurite (the old one stopped): every scenario starts equal."""
        if self.azurite is not None:
            self.azurite.stop()
        self.azurite = start_azurite(max_heap_mb=max_heap_mb)
        return self.azurite

    @property
    def storage(self) -> str:
        assert self.azurite is not None
        return self.azurite.connection_string

    def azurite_cpu(self) -> float:
        """CPU seconds (user + system) Azurite's node process has used so far."""
        assert self.azurite is not None
        times = psutil.Process(self.azurite.process.pid).cpu_times()
        return float(times.user + times.system)

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of an acctsync child: this stack's services, and `extra`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAVERSE_", "Azure"))}
        env.update({k: v for k, v in self.sim.env.items() if k.startswith("DATAVERSE_")})
        assert self.azurite is not None
        env.update(
            AzureWebJobsStorage=self.storage,
            SYNC_INTERVAL_MINUTES="0",
            ACTIVITY_CONTACT_LIMIT="5000",
            BENCH_TABLE_PORT=str(self.azurite.table_port),
            BENCH_QUEUE_PORT=str(self.azurite.queue_port),
            # As the Function App runs it (infra/app/function.bicep sets it).
            MALLOC_ARENA_MAX="2",
        )
        env.update(extra or {})
        return env

    def dataverse_requests(self) -> int:
        """Requests the simulator's Web API received since the last call (token requests apart)."""
        entries = self.sim.control.requests(clear=True)
        return sum(1 for e in entries if e.get("listener") == "webapi")

    def start_child(
        self,
        task: str,
        *,
        env: dict[str, str] | None = None,
        stdout: IO[str] | None = None,
        **args: Any,
    ) -> subprocess.Popen[str]:
        """A child running `task`; its output goes to `stdout` (a file, for a child that runs
        long and prints as it goes) or to a pipe that finish_child reads."""
        return subprocess.Popen(
            [sys.executable, "-m", "bench.child", task, json.dumps(args)],
            cwd=ROOT,
            env=self.child_env(env),
            stdout=stdout or subprocess.PIPE,
            text=True,
        )

    def run_child(
        self,
        task: str,
        *,
        env: dict[str, str] | None = None,
        keep_partitions: bool = False,
        **args: Any,
    ) -> dict[str, Any]:
        """Run one acctsync task in a child process; its last stdout line is its JSON result."""
        process = self.start_child(task, env=env, **args)
        return finish_child(process, keep_partitions=keep_partitions)


def finish_child(
    process: subprocess.Popen[str], *, keep_partitions: bool = False
) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bench child failed ({process.returncode}):\n{out[-3000:]}")
    return child_result(out, keep_partitions=keep_partitions)


def child_result(out: str, *, keep_partitions: bool = False) -> dict[str, Any]:
    """A child's result (the last line of its output); its writes per partition are summed up
    as their spread, unless kept (to sum several processes' up together)."""
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if not keep_partitions:
        result["spread"] = counting.spread(result.pop("partitions", {})).as_dict()
    return result


@contextlib.contextmanager
def running_stack() -> Iterator[Stack]:
    sim = start_simulator(timeout_s=120)
    stack = Stack(sim)
    try:
        yield stack
    finally:
        if stack.azurite is not None:
            stack.azurite.stop()
        sim.stop()
