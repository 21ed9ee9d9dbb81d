"""The verify scenarios (issue 23): `acctsync verify` of a mirror that a cycle built, against a
raw key-ordered scan of the same mirror plus a bare loop paging the same tables from the
simulator, at two sizes for its peak RSS; and a repair of drift made on purpose."""

from __future__ import annotations

from typing import Any

from bench import baseline
from bench.stack import Stack
from shared.mirror.records import bucket
from shared.mirror.row import version_of, version_property
from shared.mirror.writes import merge_all
from shared.services import Services
from shared.settings import Settings

CONTACTS_PER_ACCOUNT = 10
# What the bare loop selects of each table: the key and its version.
KEYS = {"contacts": "contactid", "accounts": "accountid"}


def verify(stack: Stack, sizes: tuple[int, ...], drifted: int, rounds: int = 2) -> dict[str, Any]:
    """For each size (contacts, a tenth as many accounts): a cycle loads it (set-up), then a
    verify and its baseline, alternately, `rounds` times; then, on the last size's mirror, a
    repair of `drifted` contacts made to drift."""
    measured: dict[str, Any] = {}
    for contacts in sizes:
        accounts = contacts // CONTACTS_PER_ACCOUNT
        stack.sim.control.reset(accounts, contacts, seed=1)
        stack.fresh_azurite()
        load = stack.run_child("cycle")
        assert load["result"]["status"] == "succeeded", load["result"]
        measured[str(contacts)] = {
            "accounts": accounts,
            "contacts": contacts,
            "setup_load_s": load["wall_s"],
            **_verify_and_baseline(stack, {"accounts": accounts, "contacts": contacts}, rounds),
        }
    return {"sizes": measured, "repair": _repair(stack, drifted)}


def _verify_and_baseline(stack: Stack, tables: dict[str, int], rounds: int) -> dict[str, Any]:
    """The best of `rounds` verifies of a clean mirror, against the best raw scan of it plus
    the best bare paging of the same tables (the same rows: all of Dynamics' rows, the
    sync filter's Nos included, which the verify pages too and leaves out)."""
    records = sum(tables.values())
    verifies: list[dict[str, Any]] = []
    scans: list[float] = []
    lean_scans: list[float] = []
    pages: list[float] = []
    for _ in range(rounds):
        stack.dataverse_requests()  # clears the simulator's request log
        run = stack.run_child("verify")
        run["dataverse_requests_seen"] = stack.dataverse_requests()
        assert run["result"]["drift"] == 0 and not run["result"]["error"], run["result"]
        verifies.append(run)
        # The faster of two raw scans: the SDK's, and the lean query the verify uses itself
        # (a baseline cannot be made low by a slow way of reading).
        scans.append(stack.run_child("scan_mirror")["wall_s"])
        lean_scans.append(stack.run_child("scan_mirror", lean=True)["wall_s"])
        paged_s = 0.0
        for entity_set, key in KEYS.items():
            seconds, rows, _ = baseline.page_loop(
                stack, entity_set, f"{key},versionnumber", track_changes=False
            )
            assert rows == tables[entity_set], (entity_set, rows, tables)
            paged_s += seconds
        pages.append(paged_s)
    best = min(verifies, key=lambda r: r["wall_s"])
    baseline_s = min(scans + lean_scans) + min(pages)
    return {
        "verify_s": best["wall_s"],
        "verify_cpu_s": best["cpu_s"],
        "checked": best["result"]["checked"],
        "dataverse_requests": best["dataverse_requests_seen"],
        "storage_ops": best["storage"]["total"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in verifies),
        "scan_s": min(scans + lean_scans),
        "sdk_scan_s": min(scans),
        "lean_scan_s": min(lean_scans),
        "pages_s": min(pages),
        "baseline_s": baseline_s,
        "records_per_s": records / best["wall_s"],
        "baseline_records_per_s": records / baseline_s,
        "ratio": baseline_s / best["wall_s"],
    }


def _repair(stack: Stack, drifted: int) -> dict[str, Any]:
    """`drifted` mirrored contacts, spread over the table, made to drift a third each way
    (missing, stale, wrongly deleted); `acctsync verify --repair` finds and repairs them all,
    and a verify after it finds none."""
    kinds = _make_drift(stack, drifted)
    stack.dataverse_requests()
    run = stack.run_child("verify", repair=True)
    requests = stack.dataverse_requests()
    found = run["result"]
    assert (found["drift"], found["repaired"], found["drift_left"]) == (drifted, drifted, 0), found
    after = stack.run_child("verify")["result"]
    assert after["drift"] == 0, after
    return {
        "drifted": drifted,
        "made": kinds,
        "found_by_kind": found["by_kind"],
        "repaired": found["repaired"],
        "seconds": run["wall_s"],
        "dataverse_requests": requests,
        "dataverse_requests_counted": found["dataverse_requests"],
        "peak_rss_mb": run["peak_rss_mb"],
        "drift_after": after["drift"],
    }


def _make_drift(stack: Stack, drifted: int) -> dict[str, int]:
    services = Services(Settings.from_env(stack.child_env())).ready()
    try:
        table = services.contacts.table
        rows = list(table.list_entities(select=["PartitionKey", "RowKey", "version"]))
        step = max(1, len(rows) // drifted)
        chosen = rows[::step][:drifted]
        missing, stale, deleted = chosen[0::3], chosen[1::3], chosen[2::3]
        for row in missing:
            table.delete_entity(row["PartitionKey"], row["RowKey"])
        merge_all(
            table,
            [_key(r) | {"version": version_property(max(0, version_of(r) - 1))} for r in stale]
            + [_key(r) | {"is_deleted": True} for r in deleted],
        )
    finally:
        services.close()
    return {"missing": len(missing), "stale": len(stale), "wrongly_deleted": len(deleted)}


def _key(row: Any) -> dict[str, Any]:
    return {"PartitionKey": bucket(str(row["RowKey"])), "RowKey": str(row["RowKey"])}
