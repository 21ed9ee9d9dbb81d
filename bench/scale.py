"""`python -m bench --only scale`: issue 26's real-org run. 100,000 accounts and 1,000,000
contacts of a real org's shape loaded through `acctsync cycle` with two extra `acctsync
worker` processes on one fresh Azurite; its time, peak RSS per process, entities per record
and the busiest partition's share of the writes of all three; then an idle cycle and 1,000
changed accounts on that mirror (by the cycle alone, the workers stopped)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from typing import IO, Any

from bench import ceiling, counting
from bench.loads import ESTIMATED_ENTITIES_PER_RECORD, incremental, load_figures
from bench.scenarios import run_cycle
from bench.stack import Stack, child_result

WORKERS = 2
# The ceiling before the load writes at most this many entities: its rate, not the load's
# whole count, is what the ratio needs (a million-record load would write three million).
CEILING_SAMPLE = 200_000
STOP_WAIT_S = 120
# A million-contact mirror is ~4 million entities in Azurite's memory: past Node's default heap.
AZURITE_HEAP_MB = 16_000


def scale(stack: Stack, contacts: int, *, changed_accounts: int) -> dict[str, Any]:
    accounts = max(1, contacts // 10)
    stack.sim.control.reset(accounts, contacts, seed=1, shape="lognormal")
    before = ceiling.measure(min(CEILING_SAMPLE, ESTIMATED_ENTITIES_PER_RECORD * accounts * 11))
    stack.fresh_azurite(max_heap_mb=AZURITE_HEAP_MB)
    with contextlib.ExitStack() as files:
        # Their output goes to files: a worker prints a line per batch, which would fill a pipe.
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(WORKERS)]
        workers = [stack.start_child("worker", stdout=log) for log in logs]
        try:
            load = run_cycle(stack, keep_partitions=True)
        finally:
            for worker in workers:
                worker.terminate()  # as the host stops them (SIGTERM): each finishes its batch
            done = [_stopped(worker, log) for worker, log in zip(workers, logs, strict=True)]
    partitions = [load.pop("partitions"), *(d.pop("partitions") for d in done)]
    # Every process's work: the cycle applies beside the workers.
    cycle_storage, cycle_cpu_s = load["storage"], load["cpu_s"]
    load["storage"] = {k: v + sum(d["storage"][k] for d in done) for k, v in cycle_storage.items()}
    load["cpu_s"] = cycle_cpu_s + sum(d["cpu_s"] for d in done)
    load["cycle_process"] = {"storage": cycle_storage, "cpu_s": cycle_cpu_s}
    load_figures(load, before)
    load["spread"] = counting.spread(*partitions).as_dict()
    return {
        "accounts": accounts,
        "contacts": contacts,
        "shape": "lognormal",
        "load": load,
        "ceiling": before.against(
            entities=load["storage"]["entities_written"], wall_s=load["wall_s"]
        ),
        "workers": [{k: d[k] for k in ("wall_s", "cpu_s", "peak_rss_mb", "storage")} for d in done],
        "idle": run_cycle(stack),
        "incremental": incremental(stack, changed_accounts),
    }


def _stopped(worker: subprocess.Popen[str], log: IO[str]) -> dict[str, Any]:
    """A stopped worker's figures; killed if it does not end after SIGTERM."""
    try:
        worker.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        raise RuntimeError("an `acctsync worker` did not stop on SIGTERM") from None
    log.seek(0)
    out = log.read()
    if worker.returncode != 0:
        raise RuntimeError(f"bench worker failed ({worker.returncode}):\n{out[-3000:]}")
    return child_result(out, keep_partitions=True)
