"""Rows 1-3 and 17 of the report: initial loads of both shapes, idle cycles, changed
accounts, and the real-org run (issue 26). Every ceiling is printed beside its ratio, with a
warning when it is far below the run's best."""

from __future__ import annotations

from typing import Any

from bench.ceiling import run_best, warning
from bench.loads import GOAL_RECORDS, GOAL_SPREAD

Row = tuple[str, ...]
GOAL_CHANGED = 0.5  # 1,000 changed accounts, entities/s over the ceiling's
LOADS = (("small", "small"), ("small_lognormal", "small"), ("big", "big"), ("big_lognormal", "big"))


def loads(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, figures) of every initial load that ran, in the report's order."""
    return [(label, results[key]) for key, label in LOADS if key in results]


def load_rows(number: str, label: str, data: dict[str, Any], best: float) -> list[Row]:
    load, ceiling = data["load"], data["ceiling"]
    spread = load["spread"]
    name = f"{data['accounts']:,} acc + {data['contacts']:,} con ({label}, {data['shape']})"
    return [
        (
            number,
            f"initial load {name}",
            f"{load['records_per_s']:,.0f} rec/s, {load['wall_s']:,.0f} s; "
            f"{load['entities_per_record']:.2f} ent/rec, "
            f"{load['transactions_per_record']:.3f} tx/rec; CPU {load['cpu_ms_per_record']:.2f} "
            f"ms/rec (Azurite {load.get('azurite_cpu_s', 0):,.0f} s)",
            _ceiling(ceiling, best),
            f"{load['records_ratio']:.2f}",
            f">= {GOAL_RECORDS} (rec/s)",
            met(load["records_ratio"] >= GOAL_RECORDS),
        ),
        (
            number,
            f"busiest partition, load {name}",
            f"{spread['share']:.3f} of {spread['table']} ({spread['partitions']:,} partitions, "
            f"key {spread['partition'][:24]!r}); {spread['overall_share']:.3f} of all writes",
            "",
            "",
            "<= ~1/16 (+10 %)",
            met(spread["share"] <= GOAL_SPREAD),
        ),
    ]


def idle_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for shape in ("pareto", "lognormal"):
        idles = [(d["accounts"], d["idle"]) for _, d in loads(results) if d["shape"] == shape]
        # The apply workers poll the queue while the cycle runs, so queue operations follow
        # the wall time; the cycle's own work is its Dataverse requests and table operations.
        seen = {(i["dataverse_requests_seen"], table_ops(i["storage"])) for _, i in idles}
        for accounts, idle in idles:
            rows.append(
                (
                    "2",
                    f"idle cycle, {accounts:,} accounts ({shape})",
                    f"{idle['dataverse_requests_seen']} Dataverse req, "
                    f"{table_ops(idle['storage'])} table ops (+{idle['storage']['queue_ops']} "
                    f"queue polls), {idle['wall_s']:.2f} s",
                    "",
                    "",
                    "same req and table ops, <= 3 req",
                    met(len(seen) == 1 and idle["dataverse_requests_seen"] <= 3),
                )
            )
    return rows


def changed_row(number: str, mirror: str, inc: dict[str, Any], best: float) -> Row:
    ceiling = inc["ceiling"]
    return (
        number,
        f"{inc['changed_accounts']:,} changed accounts x {inc['contacts_each']} contacts, one "
        f"field, on {mirror}",
        f"{inc['wall_s']:.1f} s, {inc['storage']['entities_written']:,} entities, "
        f"{inc['summary']['activities_logged']:,} activities, {inc['storage']['total']:,} "
        f"storage ops; CPU s: acctsync {inc['cpu_s']:.0f}, Azurite {inc['azurite_cpu_s']:.0f}",
        _ceiling(ceiling, best),
        f"{ceiling['ratio']:.2f}",
        f">= {GOAL_CHANGED} (ent/s)",
        met(ceiling["ratio"] >= GOAL_CHANGED),
    )


def changed_rows(results: dict[str, Any], best: float) -> list[Row]:
    return [
        changed_row("3", f"the {label} {d['shape']} mirror", d["incremental"], best)
        for label, d in loads(results)
        if "incremental" in d
    ]


def scale_rows(results: dict[str, Any]) -> list[Row]:
    """Row 17: the real-org run, when it ran."""
    found = results.get("scale")
    if not found:
        return []
    best = run_best(results)
    load = found["load"]
    rss = ", ".join(f"{w['peak_rss_mb']:.0f}" for w in found["workers"])
    idle = found["idle"]
    return [
        *load_rows("17", "cycle + 2 workers", found, best),
        (
            "17",
            "peak RSS per process, same load",
            f"cycle {load['peak_rss_mb']:.0f} MB, workers {rss} MB",
            "",
            "",
            "",
            "",
        ),
        (
            "17",
            f"idle cycle on that mirror, {found['accounts']:,} accounts",
            f"{idle['dataverse_requests_seen']} Dataverse req, {table_ops(idle['storage'])} "
            f"table ops, {idle['wall_s']:.2f} s",
            "",
            "",
            "<= 3 req",
            met(idle["dataverse_requests_seen"] <= 3),
        ),
        changed_row("17", "that mirror", found["incremental"], best),
    ]


def _ceiling(ceiling: dict[str, Any], best: float) -> str:
    return (
        f"{ceiling['entities_per_s']:,.0f} ent/s batched ({ceiling['seconds']:,.1f} s)"
        + warning(ceiling, best)
    )


def table_ops(storage: dict[str, int]) -> int:
    return storage["table_reads"] + storage["table_writes"] + storage["table_transactions"]


def met(ok: bool) -> str:
    return "yes" if ok else "NO"
