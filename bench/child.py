"""One acctsync task in a process of its own: `python -m bench.child TASK 'JSON args'`.

It configures itself from the environment (as the Functions host would), counts every
storage request it sends, and prints one JSON line: wall time of the task, its own peak RSS
and CPU time, storage operations, and the task's result.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from bench import counting


def main(argv: list[str]) -> int:
    task, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    counting.install(int(os.environ["BENCH_TABLE_PORT"]), int(os.environ["BENCH_QUEUE_PORT"]))
    from shared.services import get_services

    services = get_services()  # tables and queues exist before the clock starts
    if task in ("cycle", "plan"):
        # A running host holds its token; fetch it before the clock starts (it goes to the
        # authority, which the Dataverse request counts leave out anyway).
        services.dataverse()._tokens.token()
    start_at = float(args.get("start_at", 0))
    if start_at:
        time.sleep(max(0.0, start_at - time.time()))
    counting.reset()
    cpu_before = _cpu()
    started = time.perf_counter()
    result = TASKS[task](services, args)
    wall = time.perf_counter() - started
    ops = counting.snapshot()
    print(
        json.dumps(
            {
                "task": task,
                "wall_s": wall,
                "ended_at": time.time(),
                "cpu_s": _cpu() - cpu_before,
                "peak_rss_mb": _peak_rss_mb(),
                "storage": ops.as_dict(),
                "result": result,
            }
        ),
        flush=True,
    )
    return 0


def _peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM of its memory map. (ru_maxrss would not do: Linux
    carries it across exec, so it may report the bench process this child was forked from.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cycle(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from acctsync.runner import run_cycle_now

    summary: dict[str, Any] = run_cycle_now(services)
    return summary


def _plan(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from shared.sync.cycle import heartbeat

    outcome = heartbeat(services, owner="bench", force=True)
    return {"action": outcome.action.value, **_changed(outcome.summary)}


def _changed(plan: dict[str, Any]) -> dict[str, Any]:
    tables = plan.get("tables", {})
    return {
        "accounts_changed": tables.get("accounts", {}).get("changed", 0),
        "contacts_changed": tables.get("contacts", {}).get("changed", 0),
        "batches": plan.get("batches", 0),
    }


class _PageTimes:
    """Progress that keeps how long each page took (read, packed and sent)."""

    def __init__(self) -> None:
        self.pages: list[float] = []
        self.mark = time.perf_counter()

    def started(self, entity_set: str, mode: Any, *, total: int | None, done: int) -> None:
        pass

    def read(self, entity_set: str, rows: int) -> None:
        now = time.perf_counter()
        self.pages.append(now - self.mark)
        self.mark = now

    def enqueued(self, batches: int, records: int) -> None:
        pass


def _plan_step(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The cycle's first step planned over as many heartbeats as its budget takes."""
    from shared.sync.cycle import heartbeat

    times = _PageTimes()
    beats: list[float] = []
    while True:
        started = time.perf_counter()
        times.mark = started
        outcome = heartbeat(services, owner="bench", force=not beats, progress=times)
        beats.append(time.perf_counter() - started)
        if outcome.action.value != "checkpointed":
            break
    return {
        "action": outcome.action.value,
        "heartbeats": beats,
        "pages": times.pages,
        **_changed(outcome.summary),
    }


def _drain(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from acctsync.worker import QueueWorker

    worker = QueueWorker(services)
    worker.drain()
    return {"applied": worker.applied, "failed": worker.failed}


TASKS = {"cycle": _cycle, "plan": _plan, "plan_step": _plan_step, "drain": _drain}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
