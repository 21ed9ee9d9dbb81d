"""The scenarios: each sets up its data, runs acctsync in child processes, and measures the
baseline of the same work in the same run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from azure.storage.queue import QueueClient

from acctsync.sim.harness import SimulatorControl
from bench import baseline, ceiling
from bench.stack import Stack, finish_child
from shared.dataverse.client import DataverseClient
from shared.dataverse.columns import (
    DEFAULT_ACCOUNT_COLUMNS,
    account_select,
    contact_select,
    read_tables,
)
from shared.mapping import ColumnType
from shared.services import Services
from shared.settings import Settings
from shared.state.schedule import LoadMode
from shared.storage import BATCH_QUEUE, CONTACTS_TABLE
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, Batch

SUMMARY_KEYS = (
    "status",
    "modes",
    "accounts_changed",
    "contacts_changed",
    "batches",
    "batches_poisoned",
    "accounts_applied",
    "contacts_applied",
    "skipped",
    "deleted",
    "activities_logged",
    "activities_suppressed",
    "errors",
    "dataverse_requests",
    "planning_heartbeats",
    "started_at",
    "finished_at",
)


def run_cycle(
    stack: Stack, *, with_azurite_cpu: bool = True, keep_partitions: bool = False
) -> dict[str, Any]:
    """One `acctsync cycle` in a child process, with what Dataverse and Azurite saw of it."""
    stack.dataverse_requests()  # clears the simulator's request log
    azurite_before = stack.azurite_cpu()
    run = stack.run_child("cycle", keep_partitions=keep_partitions)
    summary = run.pop("result")
    run["summary"] = {k: summary.get(k) for k in SUMMARY_KEYS}
    run["dataverse_requests_seen"] = stack.dataverse_requests()
    if with_azurite_cpu:
        run["azurite_cpu_s"] = stack.azurite_cpu() - azurite_before
    return run


# Rows the re-load's point-read ceiling reads: a sample, since a re-load reads each row once
# however large the table (its rate still varies by run: 250 and 448 rows/s on 2026-12-02).
POINT_READ_SAMPLE = 20_000


def reload(stack: Stack) -> dict[str, Any]:
    """Every table read again in full (an expired delta token), then swept for deletions;
    against raw point reads of the same mirror, one per row, as the re-load does."""
    stack.sim.control.expire_delta_tokens()
    run = run_cycle(stack)
    summary = run["summary"]
    run["records"] = summary["accounts_changed"] + summary["contacts_changed"]
    run["records_per_s"] = run["records"] / run["wall_s"]
    seconds, rows = baseline.point_reads(stack, CONTACTS_TABLE, POINT_READ_SAMPLE)
    run["point_reads"] = {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "ratio": run["records_per_s"] / (rows / seconds),
    }
    return run


_WORDS = (
    "Adams", "Bowen", "Cooper", "Dubois", "Eriksson", "Fernandez", "Garcia", "Holloway",
    "Ibrahim", "Jensen", "Kowalski", "Lopez", "Muller", "Nakamura", "Patel", "Rossi",
    "Silva", "Tanaka", "Vargas", "Wong",
)  # fmt: skip


def plant(control: SimulatorControl, sizes: Sequence[int], *, label: str) -> list[str]:
    """Accounts created in the simulator, one per size, with that many contacts each."""
    ids = control.create_accounts(
        [
            {"name": f"{_WORDS[n % len(_WORDS)]} {label} {n}", "revenue": 1.0}
            for n in range(len(sizes))
        ]
    )
    rows = [
        {
            # Names start with varied letters, as real ones do (search is keyed by them).
            "firstname": _WORDS[k % len(_WORDS)],
            "lastname": f"{_WORDS[(n + k) % len(_WORDS)]} {label} {n}-{k}",
            "parentcustomerid": account_id,
            "parentcustomertype": "account",
        }
        for n, (account_id, size) in enumerate(zip(ids, sizes, strict=True))
        for k in range(size)
    ]
    for start in range(0, len(rows), 10_000):
        control.create_contacts(rows[start : start + 10_000])
    return ids


def fanout(stack: Stack, sizes: tuple[int, ...]) -> dict[str, Any]:
    """One field changed on accounts with these many contacts (after load_and_idle's small
    mirror, whose demo data has the two accounts at 5,000 and 5,001 contacts)."""
    control = stack.sim.control
    accounts: dict[int, str] = {}
    for entry in control.stats()["largest_accounts"]:
        if entry["contacts"] in sizes:
            accounts.setdefault(entry["contacts"], entry["accountid"])
    created = 0
    for size in sizes:
        if size in accounts:
            continue
        (accounts[size],) = plant(control, [size], label=f"Fan-out {size}")
        created += size
    result: dict[str, Any] = {"setup": _setup_load(stack) if created else None, "changes": {}}
    for number, size in enumerate(sizes):
        control.update_account(accounts[size], {"telephone1": f"+1 206 555 {number:04d}"})
        run = run_cycle(stack)
        run["contacts"] = size
        logged = run["summary"]["activities_logged"]
        run["activities_per_s"] = logged / run["wall_s"]
        if logged:
            # Right after the change, on an Azurite of its own, before the next one.
            written = run["storage"]["entities_written"]
            raw = ceiling.measure(written)
            run["ceiling"] = raw.against(entities=written, wall_s=run["wall_s"])
        result["changes"][str(size)] = run
    return result


def _plan_stages(stack: Stack, between: Callable[[], None]) -> tuple[dict[str, Any], float, float]:
    """A whole cycle planned step by step, each step in a child process as the heartbeat
    does it, with `between()` after each (it must empty the queue); returns the cycle's
    counts, the seconds spent planning and the peak RSS of the planners."""
    plan: dict[str, Any] = {}
    seconds = peak_rss = 0.0
    while True:
        planned = stack.run_child("plan")
        if planned["result"]["action"] != "planned":
            return plan, seconds, peak_rss
        plan, seconds = planned["result"], seconds + planned["wall_s"]
        peak_rss = max(peak_rss, planned["peak_rss_mb"])
        between()


def _take_messages(stack: Stack) -> list[str]:
    """Every queued message, taken off the queue unapplied, as the raw (base64) text sent."""
    messages: list[str] = []
    with QueueClient.from_connection_string(stack.storage, BATCH_QUEUE) as queue:
        while page := list(queue.receive_messages(messages_per_page=32, visibility_timeout=600)):
            for message in page:
                messages.append(str(message.content))
                queue.delete_message(message)
    return messages


def planning(stack: Stack, contacts: int, budget_s: float) -> dict[str, Any]:
    """A first load's contacts planned over heartbeats of `budget_s` each, a checkpoint per
    page, against a bare loop over the same pages that sends the same messages."""
    stack.sim.control.reset(max(1, contacts // 10), contacts, seed=2)
    stack.fresh_azurite()
    run = stack.run_child("plan_step", env={"ACCTSYNC_PLAN_BUDGET_SECONDS": str(budget_s)})
    result = run.pop("result")
    messages = _take_messages(stack)
    stack.fresh_azurite()
    with QueueClient.from_connection_string(stack.storage, BATCH_QUEUE) as queue:
        queue.create_queue()
    bare_s, bare_rows, pages = baseline.page_loop(
        stack, "contacts", ",".join(contact_select()), messages=messages
    )
    assert bare_rows == result["contacts_changed"] == contacts, (bare_rows, result)
    beats, page_s = result["heartbeats"], result["pages"]
    return {
        "rows": contacts,
        "pages": pages,
        "batches": len(messages),
        "budget_s": budget_s,
        "heartbeats": len(beats),
        "longest_heartbeat_s": max(beats),
        "longest_page_s": max(page_s),
        "acctsync_s": run["wall_s"],
        "bare_s": bare_s,
        "acctsync_rows_per_s": contacts / run["wall_s"],
        "bare_rows_per_s": contacts / bare_s,
        "ratio": bare_s / run["wall_s"],
        "peak_rss_mb": run["peak_rss_mb"],
    }


def fanout_batch(stack: Stack, accounts: int, contacts_each: int, fields: int) -> dict[str, Any]:
    """One batch of `accounts` changed accounts, each with `contacts_each` contacts and
    `fields` changed fields, applied by one process: its peak RSS and rate. The memberships
    are written straight into the mirror (set-up, not a figure)."""
    stack.fresh_azurite()
    services = Services(Settings.from_env(stack.child_env())).ready()
    try:
        ids = [str(uuid.UUID(int=7 * 10**9 + n)) for n in range(accounts)]
        setup_started = time.perf_counter()
        services.members.add_all(
            (account_id, str(uuid.UUID(int=8 * 10**9 + a * contacts_each + c)))
            for a, account_id in enumerate(ids)
            for c in range(contacts_each)
        )
        columns = {f"field{n}": ColumnType.STRING for n in range(fields)}

        def change(version: int) -> list[AccountChange]:
            return [
                AccountChange(
                    account_id,
                    version,
                    "2026-11-30T12:00:00Z",
                    {name: f"value {version} of {name}" for name in columns},
                )
                for account_id in ids
            ]

        apply_batch(
            services, Batch("benchsetup", "1", LoadMode.INITIAL, columns, change(1)).encode()
        )
        setup_s = time.perf_counter() - setup_started
        services.storage.queue(BATCH_QUEUE).send_message(
            Batch("benchfanout", "1", LoadMode.DELTA, columns, change(2)).encode()
        )
        run = stack.run_child("drain")
        logged = services.results.totals("benchfanout").result.activities_logged
    finally:
        services.close()
    assert logged == accounts * contacts_each * fields, logged
    return {
        "accounts": accounts,
        "contacts_each": contacts_each,
        "fields": fields,
        "activities": logged,
        "setup_s": setup_s,
        "wall_s": run["wall_s"],
        "activities_per_s": logged / run["wall_s"],
        "peak_rss_mb": run["peak_rss_mb"],
        "storage": run["storage"],
    }


def _setup_load(stack: Stack, workers: int = 2) -> dict[str, Any]:
    """Load what was just created (set-up, not a figure): each stage planned by one process
    and applied by `workers` processes, then a cycle that finds nothing new."""
    apply_s, apply_rss = 0.0, [0.0]

    def apply() -> None:
        nonlocal apply_s
        started = time.perf_counter()
        drains = [stack.start_child("drain") for _ in range(workers)]
        apply_rss.extend(finish_child(d)["peak_rss_mb"] for d in drains)
        apply_s += time.perf_counter() - started

    plan, plan_s, plan_rss = _plan_stages(stack, apply)
    return {
        "records": int(plan["contacts_changed"]) + int(plan["accounts_changed"]),
        "plan_s": plan_s,
        "apply_s": apply_s,
        "peak_rss_mb": max(plan_rss, *apply_rss),
        "finish": run_cycle(stack),
    }


def paging(stack: Stack, accounts: int, rounds: int = 2) -> dict[str, Any]:
    """DataverseClient.changes over every page of `accounts` accounts, against a bare httpx
    loop sending the same requests; the best of `rounds` alternating runs of each."""
    stack.sim.control.reset(accounts, 0, seed=1)
    settings = Settings.from_env(stack.sim.env).require_dataverse()
    with DataverseClient(settings) as client:
        table = read_tables(client, ["account"])["account"]
        columns = {
            c.name: c.type
            for c in table.columns.values()
            if c.valid_for_read and not c.secured and c.name in DEFAULT_ACCOUNT_COLUMNS
        }
        select = account_select(columns)
        client_s: list[float] = []
        bare_s: list[float] = []
        rows = requests = 0
        for _ in range(rounds):
            seconds, bare_rows, requests = baseline.page_loop(stack, "accounts", ",".join(select))
            bare_s.append(seconds)
            started = time.perf_counter()
            rows = sum(len(p.rows) for p in client.changes("accounts", select, link=None))
            client_s.append(time.perf_counter() - started)
            assert rows == bare_rows == accounts, (rows, bare_rows, accounts)
    return {
        "rows": rows,
        "pages": requests,
        "client_s": min(client_s),
        "bare_s": min(bare_s),
        "client_rows_per_s": rows / min(client_s),
        "bare_rows_per_s": rows / min(bare_s),
        "ratio": min(bare_s) / min(client_s),
        "all_client_s": client_s,
        "all_bare_s": bare_s,
    }


def scaleout(
    stack: Stack, accounts: int, contacts: int, workers: tuple[int, ...]
) -> dict[str, Any]:
    """The same queued batches applied by 1, 2, 4... worker processes on one queue, each on
    a fresh Azurite, with the CPU seconds of Azurite and of the workers."""
    stack.sim.control.reset(accounts, contacts, seed=1)
    stack.fresh_azurite()
    messages: list[str] = []

    def collect() -> None:
        messages.extend(_take_messages(stack))

    # Both stages' batches, taken off the queue unapplied (a first load logs no activities,
    # so the order in which the workers then apply them changes nothing).
    plan, plan_s, _ = _plan_stages(stack, collect)
    records = int(plan["accounts_changed"]) + int(plan["contacts_changed"])
    runs: dict[str, Any] = {}
    for count in workers:
        stack.fresh_azurite()
        with QueueClient.from_connection_string(stack.storage, BATCH_QUEUE) as queue:
            queue.create_queue()
            for body in messages:
                queue.send_message(body)  # the raw (base64) text the cycle sent
        start_at = time.time() + 3.0 + 0.5 * count  # after every worker has imported
        azurite_before = stack.azurite_cpu()
        children = [stack.start_child("drain", start_at=start_at) for _ in range(count)]
        done = [finish_child(child) for child in children]
        wall = max(d["ended_at"] for d in done) - start_at
        azurite_cpu = stack.azurite_cpu() - azurite_before
        workers_cpu = sum(d["cpu_s"] for d in done)
        runs[str(count)] = {
            "workers": count,
            "wall_s": wall,
            "records_per_s": records / wall,
            "batches": sum(d["result"]["applied"] for d in done),
            "failed": sum(d["result"]["failed"] for d in done),
            "workers_cpu_s": workers_cpu,
            "azurite_cpu_s": azurite_cpu,
            "cores_busy": (workers_cpu + azurite_cpu) / wall,
            "workers_cpu_ms_per_record": 1000 * workers_cpu / records,
            "azurite_cpu_ms_per_record": 1000 * azurite_cpu / records,
            "peak_rss_mb": max(d["peak_rss_mb"] for d in done),
        }
    return {
        "records": records,
        "batches": len(messages),
        # Planning alone (read every page, pack, enqueue), in one process as the heartbeat does.
        "plan_s": plan_s,
        "plan_records_per_s": records / plan_s,
        "runs": runs,
    }


def single_upsert_rate(stack: Stack, count: int = 2_000) -> dict[str, Any]:
    seconds = baseline.single_upserts(stack, count)
    return {"entities": count, "seconds": seconds, "entities_per_s": count / seconds}
