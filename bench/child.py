"""One acctsync task in a process of its own: `python -m bench.child TASK 'JSON args'`.

It configures itself from the environment (as the Functions host would), counts every
storage request it sends, and prints one JSON line: wall time of the task, its own peak RSS
and CPU time, storage operations (and entities written per table and partition), and the
task's result.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

from bench import counting

if TYPE_CHECKING:  # the child imports the product only once its counting is installed
    from shared.state.schedule import CyclePlan


def main(argv: list[str]) -> int:
    task, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    counting.install(int(os.environ["BENCH_TABLE_PORT"]), int(os.environ["BENCH_QUEUE_PORT"]))
    from shared.services import get_services

    services = get_services()  # tables and queues exist before the clock starts
    if task in ("cycle", "plan", "verify"):
        # A running host holds its token; fetch it before the clock starts (it goes to the
        # authority, which the Dataverse request counts leave out anyway). It has its code
        # loaded too: cold start is a figure of its own (bench/imports.py).
        services.dataverse().transport.sign_in()
        import acctsync.runner  # noqa: F401
        import shared.verify.step  # noqa: F401
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
                "partitions": counting.partitions(),
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

    return run_cycle_now(services).to_json()


def _plan(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from shared.sync.cycle import heartbeat

    outcome = heartbeat(services, owner="bench", force=True)
    return {"action": outcome.action.value, **_changed(outcome.plan)}


def _changed(plan: CyclePlan | None) -> dict[str, Any]:
    """What a heartbeat that planned read and enqueued (nothing when it did not plan)."""
    return {
        "accounts_changed": plan.changed("accounts") if plan else 0,
        "contacts_changed": plan.changed("contacts") if plan else 0,
        "batches": plan.batches if plan else 0,
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
        **_changed(outcome.plan),
    }


def _drain(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from acctsync.worker import QueueWorker

    worker = QueueWorker(services)
    worker.drain()
    return {"applied": worker.applied, "failed": worker.failed}


def _worker(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """`acctsync worker`: apply queued batches until SIGTERM (the scale run's extra workers)."""
    from acctsync.worker import serve_until_stopped

    return {"code": serve_until_stopped()}


def _drain_without_feed(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The same drain with the activity feed's entries left out (the fan-out's baseline)."""
    import shared.sync.apply.account_applier as accounts
    from shared.mirror.activities import ActivityWriter

    class WithoutFeed(ActivityWriter):
        def __init__(self, table: Any, *, feed: Any = None, **options: Any) -> None:
            super().__init__(table, **options)

    setattr(accounts, "ActivityWriter", WithoutFeed)  # noqa: B010 (a module's global)
    return _drain(services, args)


def _read_feed(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The activity feed from its start as an export reads it, or (`limit`) following the
    positions of API pages of that size, each item decoded as the API shows it."""
    from shared.mirror.activities import feed_activities_json
    from shared.mirror.activity_feed import activities_since, activity_page
    from shared.mirror.feed_index import start_position

    if "limit" not in args:
        return {"entries": sum(1 for _ in feed_activities_json(activities_since(services.feed, 0)))}
    position: dict[str, Any] = {"after": start_position(0)}
    found = 0
    while True:
        page = activity_page(services.feed, position, int(args["limit"]))
        found += sum(1 for _ in feed_activities_json(page.items))
        if not page.more:
            return {"entries": found}
        position = page.position


def _read_raw_feed(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The same entities by a raw query of their partitions, each split into one dict per
    contact: nothing else of acctsync."""
    query = services.feed.table.query_entities(
        "PartitionKey ge @low and PartitionKey lt @high",
        parameters={"low": "act|", "high": "act}"},
        results_per_page=1000,
    )
    found = 0
    for entity in query:
        for contact_id in str(entity["contacts"]).split(","):
            found += len({**entity, "contactid": contact_id}) > 0
    return {"entries": found}


def _export(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    from acctsync.export import Export, Format, Kind, run_export

    export = Export(Kind(args["kind"]), Format(args["format"]))
    return {"rows": run_export(services, export, Path(args["output"]))}


def _scan_table(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Every row of a table by a raw query, pages of 1,000 (the export's baseline)."""
    table = services.contacts.table if args["kind"] == "contacts" else services.accounts.table
    return {"rows": sum(1 for _ in table.list_entities(results_per_page=1000))}


def _verify(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    from acctsync.runner import run_verify_now

    result = run_verify_now(services, repair=bool(args.get("repair")), deep=False)
    found: dict[str, Any] = result.to_json()
    return found


def _scan_mirror(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Both mirror tables by a raw key-ordered query, pages of 1,000, with the properties a
    verify reads of them (the verify's baseline): through the SDK, or with `lean` the way
    the verify itself reads them (no metadata, no SDK deserializer)."""
    select = ["RowKey", "version", "is_deleted", "sync_filtered", "accountid"]
    rows = 0
    for table in (services.contacts.table, services.accounts.table):
        if args.get("lean"):
            rows += _lean_scan(table, select)
        else:
            rows += sum(1 for _ in table.list_entities(select=select, results_per_page=1000))
    return {"rows": rows}


def _lean_scan(table: Any, select: list[str]) -> int:
    """Partition after partition, each in key order, pages of 1,000."""
    from shared.mirror.queries import Token, partition_page
    from shared.mirror.records import all_buckets

    rows = 0
    for partition in all_buckets():
        token: Token = None
        while True:
            page = partition_page(table, partition, select=select, top=1000, token=token)
            rows += len(page.rows)
            if page.next is None:
                break
            token = page.next
    return rows


def _serve_api(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The local host's API alone, until the bench stops it (SIGTERM)."""
    import signal

    from acctsync.localhost import api_server

    server = api_server(args["key"], port=int(args["port"]))
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
    return {"served": True}


def _raw_load(services: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The API load's baseline: the same mix of list pages and single records as storage
    reads alone (no HTTP, no acctsync), from as many threads as the API has clients."""
    import threading
    import uuid

    from shared.mirror.records import bucket

    deadline = time.monotonic() + float(args["seconds"])
    accounts = int(args["accounts"])
    latencies: list[float] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        continuation: dict[str, Any] = {"accounts": None, "contacts": None}
        step, mine = number, []
        while time.monotonic() < deadline:
            step += 1
            kind = ("accounts", "contacts")[step % 2]
            table = services.accounts.table if kind == "accounts" else services.contacts.table
            started = time.perf_counter()
            if step % 4 < 2:
                pages = table.list_entities(results_per_page=50).by_page(
                    continuation_token=continuation[kind]
                )
                list(next(pages))
                continuation[kind] = pages.continuation_token
            else:
                record = str(uuid.UUID(int=(number * 7919 + step * 104_729) % accounts + 1))
                table.get_entity(bucket(record), record)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(int(args["clients"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies}


TASKS = {
    "cycle": _cycle,
    "plan": _plan,
    "plan_step": _plan_step,
    "drain": _drain,
    "worker": _worker,
    "drain_without_feed": _drain_without_feed,
    "read_feed": _read_feed,
    "read_raw_feed": _read_raw_feed,
    "export": _export,
    "scan_table": _scan_table,
    "verify": _verify,
    "scan_mirror": _scan_mirror,
    "serve_api": _serve_api,
    "raw_load": _raw_load,
}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
