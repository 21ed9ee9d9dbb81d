"""The scenarios of the lists, change feeds and exports (issue 14), each against its baseline
measured in the same run: the fan-out with and without the feed's index, the feed read
against a raw query of the same entities, an export against a raw scan of the same table, and
the API under 50 concurrent clients."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import ServiceResponseError

from acctsync.ports import free_port, wait_for_port
from bench import baseline, ceiling
from bench.stack import Stack, finish_child
from shared.mapping import ColumnType
from shared.mirror.records import bucket
from shared.services import Services
from shared.settings import Settings
from shared.state.schedule import LoadMode
from shared.storage import BATCH_QUEUE
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, Batch
from shared.times import utcnow

COLUMNS = {"telephone1": ColumnType.STRING}


def _change(account_id: str, version: int) -> list[AccountChange]:
    values = {"telephone1": f"+1 425 555 {version:04d}"}
    return [AccountChange(account_id, version, "2026-12-01T12:00:00Z", values)]


def feed_fanout(stack: Stack, contacts: int, rounds: int = 2) -> dict[str, Any]:
    """One field changed on an account of `contacts` contacts, applied by a worker process
    with the feed's entries and without them, alternately; then the feed read back against a
    raw query of the same partitions. The memberships are written straight into the mirror
    (set-up, not a figure)."""
    stack.fresh_azurite()
    services = Services(Settings.from_env(stack.child_env())).ready()
    runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
    try:
        account_id = str(uuid.UUID(int=9 * 10**9))
        services.members.add_all(
            (account_id, str(uuid.UUID(int=9 * 10**9 + 1 + n))) for n in range(contacts)
        )
        initial = Batch("benchfeed0", "1", LoadMode.INITIAL, COLUMNS, _change(account_id, 1))
        apply_batch(services, initial.encode())
        version = 1
        for _ in range(rounds):
            for task, key in (("drain", "with"), ("drain_without_feed", "without")):
                version += 1
                cycle = f"benchfeed{version}"
                batch = Batch(cycle, "1", LoadMode.DELTA, COLUMNS, _change(account_id, version))
                services.storage.queue(BATCH_QUEUE).send_message(batch.encode())
                run = stack.run_child(task)
                logged = services.results.totals(cycle).result.activities_logged
                assert logged == contacts, (task, logged)
                run["activities_per_s"] = contacts / run["wall_s"]
                runs[key].append(run)
    finally:
        services.close()
    best = {key: min(r["wall_s"] for r in found) for key, found in runs.items()}
    fastest_with = min(runs["with"], key=lambda r: r["wall_s"])
    written = fastest_with["storage"]["entities_written"]
    raw = ceiling.measure(written)  # on an Azurite of its own, right after the fan-outs
    logged_small = _small_account_changes(stack)
    time.sleep(6)  # past the feed's settle time: every entry is served
    reads = _feed_reads(stack, expected=contacts * rounds + logged_small)
    return {
        "contacts": contacts,
        "with_s": best["with"],
        "without_s": best["without"],
        "with_per_s": contacts / best["with"],
        "without_per_s": contacts / best["without"],
        "ratio": best["without"] / best["with"],
        "entities_written_with": written,
        "entities_written_without": min(r["storage"]["entities_written"] for r in runs["without"]),
        "ceiling": raw.against(entities=written, wall_s=best["with"]),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs["with"]),
        "runs": runs,
        "read": reads,
    }


def _small_account_changes(
    stack: Stack, *, accounts: int = 2_000, contacts_each: int = 3, per_batch: int = 100
) -> int:
    """Set-up of the read: one field changed on each of `accounts` small accounts, the way
    a delta of everyday changes looks in the feed (an entry of a few activities per account),
    beside the fan-outs' entries of hundreds. Returns the activities logged."""
    services = Services(Settings.from_env(stack.child_env())).ready()
    first = 10 * 10**9
    ids = [str(uuid.UUID(int=first + n * (contacts_each + 1))) for n in range(accounts)]
    try:
        services.members.add_all(
            (account_id, str(uuid.UUID(int=first + n * (contacts_each + 1) + k + 1)))
            for n, account_id in enumerate(ids)
            for k in range(contacts_each)
        )
        logged = 0
        for version, mode in ((1, LoadMode.INITIAL), (2, LoadMode.DELTA)):
            for start in range(0, accounts, per_batch):
                changes = [c for i in ids[start : start + per_batch] for c in _change(i, version)]
                batch = Batch(f"benchsmall{version}", str(start), mode, COLUMNS, changes)
                logged += apply_batch(services, batch.encode()).activities_logged
    finally:
        services.close()
    assert logged == accounts * contacts_each, logged
    return logged


def _feed_reads(stack: Stack, *, expected: int, rounds: int = 2) -> dict[str, Any]:
    """acctsync's feed reader, in an export's pages and in the API's largest, against a raw
    query of the same partitions, alternately."""
    times: dict[str, list[float]] = {"feed": [], "api_pages": [], "raw": []}
    readers: list[tuple[str, str, dict[str, Any]]] = [
        ("feed", "read_feed", {}),
        ("api_pages", "read_feed", {"limit": 1000}),
        ("raw", "read_raw_feed", {}),
    ]
    for _ in range(rounds):
        for key, task, args in readers:
            run = stack.run_child(task, **args)
            assert run["result"]["entries"] == expected, (key, run)
            times[key].append(run["wall_s"])
    best = {key: min(found) for key, found in times.items()}
    return {
        "entries": expected,
        "feed_s": best["feed"],
        "api_pages_s": best["api_pages"],
        "raw_s": best["raw"],
        "feed_per_s": expected / best["feed"],
        "api_pages_per_s": expected / best["api_pages"],
        "raw_per_s": expected / best["raw"],
        "ratio": best["raw"] / best["feed"],
        "api_pages_ratio": best["raw"] / best["api_pages"],
    }


def _seed(stack: Stack, start: int, stop: int, *, accounts: bool = False) -> float:
    """Rows shaped like mirrored contacts (or accounts) written straight into a mirror table
    in 100-entity transactions (set-up, not a figure); returns the seconds it took."""
    started = time.perf_counter()
    services = Services(Settings.from_env(stack.child_env())).ready()
    now = utcnow()
    try:
        records = services.accounts if accounts else services.contacts
        for chunk in range(start, stop, 20_000):
            rows = []
            for index in range(chunk, min(stop, chunk + 20_000)):
                row = baseline.entity(index, "")
                row["PartitionKey"] = bucket(str(row["RowKey"]))
                row["synced_at"] = now
                if accounts:
                    row["f_name"] = f"Account {index}"
                rows.append(row)
            for attempt in range(3):  # Azurite under load may drop a connection: again
                try:
                    records.upsert_all(rows)
                    break
                except ServiceResponseError:
                    if attempt == 2:
                        raise
                    time.sleep(2)
    finally:
        services.close()
    return time.perf_counter() - started


def export(stack: Stack, contacts: int, rounds: int = 2) -> dict[str, Any]:
    """`acctsync export contacts` of a tenth of `contacts`, then of all of them, against a raw
    scan of the same table in pages of 1,000; peak RSS of each (flat: the same for both)."""
    stack.fresh_azurite()
    sizes: dict[str, Any] = {}
    seeded = 0
    with tempfile.TemporaryDirectory() as folder:
        output = str(Path(folder) / "contacts.ndjson")
        for size in (contacts // 10, contacts):
            setup_s = _seed(stack, seeded, size)
            seeded = size
            exports, scans = [], []
            for _ in range(rounds):
                run = stack.run_child("export", kind="contacts", format="ndjson", output=output)
                assert run["result"]["rows"] == size, run["result"]
                exports.append(run)
                scan = stack.run_child("scan_table", kind="contacts")
                assert scan["result"]["rows"] == size, scan["result"]
                scans.append(scan)
            export_s = min(r["wall_s"] for r in exports)
            scan_s = min(r["wall_s"] for r in scans)
            sizes[str(size)] = {
                "rows": size,
                "setup_s": setup_s,
                "export_s": export_s,
                "scan_s": scan_s,
                "export_rows_per_s": size / export_s,
                "scan_rows_per_s": size / scan_s,
                "ratio": scan_s / export_s,
                "export_peak_rss_mb": max(r["peak_rss_mb"] for r in exports),
                "scan_peak_rss_mb": max(r["peak_rss_mb"] for r in scans),
            }
    return {"contacts": contacts, "sizes": sizes}


def api_load(
    stack: Stack, seconds: float, *, clients: int = 50, accounts: int = 2_000
) -> dict[str, Any]:
    """`clients` concurrent clients reading accounts and contacts from the local host's API
    for `seconds`: list pages (each client follows its own tokens) and single records; then,
    as its baseline, the same reads straight from storage by as many threads. Uses the
    contacts the export scenario left in Azurite, and `accounts` accounts seeded here."""
    _seed(stack, 0, accounts, accounts=True)
    port, key = free_port(), uuid.uuid4().hex
    server = stack.start_child("serve_api", key=key, port=port)
    try:
        wait_for_port(port, timeout=60)
        latencies, errors = asyncio.run(_load(port, key, seconds, clients, accounts))
    finally:
        server.terminate()
        served = finish_child(server)
    raw = stack.run_child("raw_load", seconds=seconds, clients=clients, accounts=accounts)
    api, storage = _latency(latencies, seconds), _latency(raw["result"]["latencies"], seconds)
    return {
        "clients": clients,
        "seconds": seconds,
        **api,
        "errors": errors,
        "server_cpu_s": served["cpu_s"],
        "server_peak_rss_mb": served["peak_rss_mb"],
        "raw": storage,
        "ratio": api["requests_per_s"] / storage["requests_per_s"],
    }


def _latency(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "requests_per_s": len(ordered) / seconds,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
    }


async def _load(
    port: int, key: str, seconds: float, clients: int, accounts: int
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"x-functions-key": key},
        limits=limits,
        timeout=60,
    ) as http:

        async def client(number: int) -> None:
            nonlocal errors
            tokens: dict[str, str | None] = {"accounts": None, "contacts": None}
            step = number
            while time.monotonic() < deadline:
                step += 1
                kind = ("accounts", "contacts")[step % 2]
                if step % 4 < 2:  # a list page, following this client's own walk
                    params: dict[str, Any] = {"limit": 50}
                    if tokens[kind]:
                        params["pageToken"] = tokens[kind]
                    url = f"/api/{kind}"
                else:  # one record
                    params = {}
                    index = (number * 7919 + step * 104_729) % accounts
                    url = f"/api/{kind}/{uuid.UUID(int=index + 1)}"
                started = time.perf_counter()
                response = await http.get(url, params=params)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    errors += 1
                elif "limit" in params:
                    tokens[kind] = response.json()["nextPageToken"]

        await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, errors
