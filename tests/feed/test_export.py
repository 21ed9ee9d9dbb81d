"""`acctsync export`: the API's walks streamed to a file or stdout, in flat memory, and
nothing half-written when it fails."""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from azure.data.tables import TableEntity

from shared.mirror.feed_index import Stream
from shared.mirror.record_walks import walk_records
from shared.mirror.records import bucket
from shared.services import Services
from shared.sync.apply import apply_batch
from shared.times import utcnow
from tests.utils.faults import scale
from tests.utils.feed import account, api_get, batch, follow, seed_account, settle

ACCTSYNC = [sys.executable, "-m", "acctsync.cli"]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: bytes
    stderr: str
    peak_rss_mb: float


def export(args: list[str], storage: str, cwd: Path) -> Run:
    """`acctsync export ARGS` in a process of its own, with its peak RSS (VmHWM, polled)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAVERSE_", "Azure"))}
    env["AzureWebJobsStorage"] = storage
    process = subprocess.Popen(
        [*ACCTSYNC, "export", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    peak = [0.0]

    def watch() -> None:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]) / 1024)
                peak[0] = max(peak[0], watched.memory_info().rss / 2**20)
            except (OSError, psutil.NoSuchProcess):
                break  # it has just ended
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    out, err = process.communicate(timeout=600)
    watcher.join()
    return Run(process.returncode, out, err.decode(), peak[0])


def seed_contacts(services: Services, start: int, stop: int) -> None:
    """Mirrored contacts written straight into the table (set-up, not the apply step)."""
    now = utcnow()
    for chunk in range(start, stop, 20_000):
        services.contacts.upsert_all(
            {
                "PartitionKey": bucket(contact_id),
                "RowKey": contact_id,
                "version": 1,
                "synced_at": now,
                "is_deleted": False,
                "accountid": "",
                "f_fullname": f"Person {n}",
                "f_emailaddress1": f"person{n}@contoso.example",
                "f_jobtitle": "Purchasing Manager",
            }
            for n in range(chunk, min(stop, chunk + 20_000))
            if (contact_id := str(uuid.UUID(int=n + 1)))
        )


# Seeding Azurite runs at a few thousand rows a second: the normal suite exports 4,000 and
# 40,000 contacts (ten times the rows, as in the soak); ACCTSYNC_SOAK=1 exports 20,000 and
# 200,000, and `make bench` measures 200,000 against a raw scan with its peak RSS.
SMALL, BIG = scale(4_000, 20_000), scale(40_000, 200_000)


def test_exports_of_many_contacts_stay_in_flat_memory(
    mirror: Services, storage_connection: str, tmp_path: Path
) -> None:
    seed_contacts(mirror, 0, SMALL)
    small = export(["contacts", "--output", "small.ndjson"], storage_connection, tmp_path)
    assert small.returncode == 0, small.stderr
    seed_contacts(mirror, SMALL, BIG)
    big = export(["contacts", "--output", "big.ndjson"], storage_connection, tmp_path)
    assert big.returncode == 0, big.stderr
    with open(tmp_path / "big.ndjson", "rb") as lines:
        ids = {json.loads(line)["contactid"] for line in lines}
    assert len(ids) == BIG
    assert f"exported {BIG:,} contacts" in big.stderr
    # Ten times the rows, the same memory: rows are streamed, never held (a tenth above
    # allows for the allocator; pages left to the cyclic collector took 66 -> 94 MB).
    assert big.peak_rss_mb < small.peak_rss_mb * 1.1, (small, big)


def test_export_is_the_api_download_in_csv_and_ndjson(
    mirror: Services, feed_api: httpx.Client, storage_connection: str, tmp_path: Path
) -> None:
    account_id, contacts = seed_account(mirror, 12, name='Contoso, "the" firm')
    since = utcnow().isoformat()
    apply_batch(mirror, batch(accounts=[account(account_id, 2, name="Contoso", revenue=2.5)]))
    settle()
    for what in ("accounts", "contacts"):
        downloaded = follow(api_get(feed_api, f"/api/{what}", limit=5))
        run = export([what, "--format", "ndjson"], storage_connection, tmp_path)
        assert run.returncode == 0, run.stderr
        exported = [json.loads(line) for line in run.stdout.splitlines()]
        assert exported == downloaded
    run = export(["accounts", "--format", "csv"], storage_connection, tmp_path)
    (row,) = list(csv.DictReader(io.StringIO(run.stdout.decode())))
    assert (row["accountid"], row["name"], row["revenue"]) == (account_id, "Contoso", "2.5")
    assert "exported 1 accounts" in run.stderr  # the rows, not the header line with them
    run = export(["activities", "--since", since, "--format", "csv"], storage_connection, tmp_path)
    rows = list(csv.DictReader(io.StringIO(run.stdout.decode())))
    assert f"exported {len(rows)} activities" in run.stderr
    assert sorted((r["contactid"], r["field"], r["new"]) for r in rows) == sorted(
        (c, f, v) for c in contacts for f, v in (("name", "Contoso"), ("revenue", "2.5"))
    )


FORMULAS = [
    '=HYPERLINK("https://evil.example","x")',
    "+1+1",
    "-2+3",
    "@SUM(1)",
    "\t=1+1",
    "\r=1",
    "a\r=1",  # a row of its own, unless the cell is quoted
]
SAFE = ["Contoso - Europe", "a\r=1"]


def test_csv_cells_never_run_as_formulas_and_ndjson_stays_exact(
    mirror: Services, storage_connection: str, tmp_path: Path
) -> None:
    for name in {*FORMULAS, *SAFE}:
        seed_account(mirror, 0, name=name)
    run = export(["accounts", "--format", "csv"], storage_connection, tmp_path)
    assert run.returncode == 0, run.stderr
    rows = csv.DictReader(io.StringIO(run.stdout.decode(), newline=""))
    # Behind a single quote, a spreadsheet shows the text and runs nothing.
    assert sorted(row["name"] for row in rows) == sorted(
        {"'" + f if f not in SAFE else f for f in FORMULAS} | set(SAFE)
    )
    run = export(["accounts", "--format", "ndjson"], storage_connection, tmp_path)
    exact = sorted(json.loads(line)["fields"]["name"] for line in run.stdout.split(b"\n")[:-1])
    assert exact == sorted({*FORMULAS, *SAFE})


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    unreachable = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    run = export(["contacts", "--output", "out.csv", "--format", "csv"], unreachable, tmp_path)
    assert run.returncode == 1 and "storage" in run.stderr
    assert list(tmp_path.iterdir()) == []
    refused = export(["contacts", "--since", "last week"], unreachable, tmp_path)
    assert refused.returncode == 2 and "ISO-8601" in refused.stderr


def test_an_output_in_a_missing_folder_is_a_clear_error_and_no_file(tmp_path: Path) -> None:
    # Storage is unreachable too: the output is checked before anything is read.
    unreachable = "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/x;"
    missing = tmp_path / "nonexistent" / "dir" / "c.csv"
    run = export(["accounts", "--format", "csv", "--output", str(missing)], unreachable, tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"the folder {missing.parent} does not exist" in run.stderr
    folder = export(["accounts", "--output", str(tmp_path)], unreachable, tmp_path)
    assert folder.returncode == 2 and "is a folder; name a file in it" in folder.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_export_walk_holds_two_pages_of_rows_with_the_cycle_collector_off(
    mirror: Services,
) -> None:
    """What a page read leaves behind is freed when its rows are, not at the cyclic garbage
    collector's next full run (which came seldom: an export's peak RSS grew with its size)."""
    seed_contacts(mirror, 0, 2_000)
    alive: list[weakref.ref[TableEntity]] = []
    most_alive = 0
    gc.collect()
    gc.disable()
    try:
        rows = walk_records(
            mirror.feed,
            mirror.initial_loads,
            Stream.SYNCED_CONTACTS,
            mirror.contacts,
            since_ms=None,
            include_deleted=False,
            page_size=100,
        )
        for row in rows:
            alive.append(weakref.ref(row))
            del row
            most_alive = max(most_alive, sum(1 for ref in alive[-1_000:] if ref() is not None))
    finally:
        gc.enable()
    assert len(alive) == 2_000
    # The page being written and the next one, read meanwhile: nothing older.
    assert most_alive <= 2 * 100, most_alive
