"""`make bench` (`python -m bench [--quick]`): every figure of docs/benchmarks.md in one run.

It starts its own Azurite (a fresh in-memory one per scenario) and Dataverse simulator, runs
acctsync in child processes (their RSS and CPU are acctsync's own), measures each baseline in
the same run, prints one table and writes bench-results.json at the repository root.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import feeds, loads, scale, scenarios, verify
from bench.imports import import_times
from bench.report import render, render_alone
from bench.stack import ROOT, Stack, running_stack


@dataclass(frozen=True)
class Sizes:
    small_accounts: int
    small_contacts: int
    big_accounts: int
    big_contacts: int
    changed_accounts: int
    fanout: tuple[int, ...]  # contacts of the accounts whose one field changes
    paging_accounts: int
    scaleout_accounts: int
    scaleout_contacts: int
    workers: tuple[int, ...]
    planning_contacts: int
    planning_budget_s: float
    fanout_batch: tuple[int, int, int]  # accounts, contacts of each, changed fields
    feed_fanout: int  # contacts of the account whose field changes, with and without the feed
    export_contacts: int  # exported, and a tenth of them first
    api_load_s: float  # 50 clients for this long
    verify_contacts: tuple[int, ...]  # verified, each after a load of a tenth as many accounts
    repair_ids: int  # contacts made to drift, then repaired
    scale_contacts: int  # the real-org run (--only scale), a tenth as many accounts


FULL = Sizes(2_000, 20_000, 20_000, 200_000, 1_000, (5_000, 5_001, 20_000, 100_000), 100_000,
             1_000, 10_000, (1, 2, 4), 100_000, 2.0, (100, 5_000, 3),
             5_000, 200_000, 60.0, (20_000, 200_000), 1_000, 1_000_000)  # fmt: skip
QUICK = Sizes(600, 12_000, 2_000, 20_000, 200, (5_000, 5_001, 8_000, 12_000), 20_000,
              300, 3_000, (1, 2, 4), 20_000, 0.5, (10, 5_000, 3),
              5_000, 40_000, 15.0, (2_000, 20_000), 1_000, 20_000)  # fmt: skip
# What --only can name: the scenarios of the lists, feeds and exports (issue 14), of verify
# (issue 23), and the real-org run (issue 26), alone; the last runs only when named.
ALONE = ("feed", "export", "api_load", "verify", "scale")
SEPARATE = ("scale",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for trying things")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench-results.json", help="where the JSON goes"
    )
    parser.add_argument(
        "--only",
        help=f"run only these scenarios, comma-separated, of: {', '.join(ALONE)} "
        "(api_load reads what export left); default: everything",
    )
    parser.add_argument(
        "--scale-contacts",
        type=int,
        help="contacts of the real-org run (--only scale; a tenth as many accounts); "
        "default 1,000,000 (20,000 with --quick)",
    )
    parser.add_argument(
        "--skip",
        help=f"run everything but these scenarios, comma-separated, of: {', '.join(ALONE)}",
    )
    args = parser.parse_args(argv)
    # A SIGTERM (make interrupted, CI stopping) unwinds like Ctrl-C, so Azurite and the
    # simulator are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = QUICK if args.quick else FULL
    if args.scale_contacts:
        sizes = replace(sizes, scale_contacts=args.scale_contacts)
    started = time.monotonic()
    results: dict[str, Any] = {
        "quick": args.quick,
        "machine": machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    def step(name: str) -> None:
        # What was measured so far is kept at each step: a run stopped part-way (a crash, a
        # machine needed back) still leaves its figures, marked incomplete.
        results["duration_s"] = round(time.monotonic() - started, 1)
        args.output.write_text(json.dumps({**results, "complete": False}, indent=2) + "\n")
        print(f"[{time.monotonic() - started:6.0f}s] {name}", file=sys.stderr, flush=True)

    def named(option: str, value: str | None) -> list[str]:
        names = [name.strip() for name in (value or "").split(",") if name.strip()]
        unknown = sorted(set(names) - set(ALONE))
        if unknown:
            parser.error(f"{option}: unknown scenarios {unknown}; choose from {', '.join(ALONE)}")
        return names

    skipped = named("--skip", args.skip)
    if args.only:
        only = named("--only", args.only)
        with running_stack() as stack:
            feed_scenarios(stack, sizes, results, step, only=only)
        return finish(results, started, args.output, render_alone)

    step("cold import of the Function App, now and before the API moved to FastAPI")
    results["imports"] = import_times()
    with running_stack() as stack:
        step("Dataverse paging: acctsync's client against a bare httpx loop")
        results["paging"] = scenarios.paging(stack, sizes.paging_accounts)
        step(
            f"planning {sizes.planning_contacts} contacts in heartbeats of "
            f"{sizes.planning_budget_s:g} s against a bare loop sending the same messages"
        )
        results["planning"] = scenarios.planning(
            stack, sizes.planning_contacts, sizes.planning_budget_s
        )
        step(f"small mirror: load {sizes.small_accounts} accounts, {sizes.small_contacts} contacts")
        results["small"] = loads.load_and_idle(
            stack,
            sizes.small_accounts,
            sizes.small_contacts,
            changed_accounts=sizes.changed_accounts,
        )
        step(f"fan-out to {', '.join(map(str, sizes.fanout))} contacts")
        results["fanout"] = scenarios.fanout(stack, sizes.fanout)
        step("small mirror of a real org's shape")
        results["small_lognormal"] = loads.load_and_idle(
            stack,
            sizes.small_accounts,
            sizes.small_contacts,
            shape="lognormal",
            changed_accounts=sizes.changed_accounts,
            again=False,
        )
        step(f"scale-out: the apply step on {', '.join(map(str, sizes.workers))} worker processes")
        results["scaleout"] = scenarios.scaleout(
            stack, sizes.scaleout_accounts, sizes.scaleout_contacts, sizes.workers
        )
        step(f"big mirror: load {sizes.big_accounts} accounts, {sizes.big_contacts} contacts")
        results["big"] = loads.load_and_idle(
            stack,
            sizes.big_accounts,
            sizes.big_contacts,
            changed_accounts=sizes.changed_accounts,
        )
        step("big mirror of a real org's shape")
        results["big_lognormal"] = loads.load_and_idle(
            stack,
            sizes.big_accounts,
            sizes.big_contacts,
            shape="lognormal",
            changed_accounts=sizes.changed_accounts,
            again=False,
        )
        accounts, each, fields = sizes.fanout_batch
        step(f"one batch of {accounts} accounts x {each} contacts x {fields} fields")
        results["fanout_batch"] = scenarios.fanout_batch(stack, accounts, each, fields)
        results["single_upserts"] = scenarios.single_upsert_rate(stack)
        everything = [n for n in ALONE if n not in skipped and n not in SEPARATE]
        feed_scenarios(stack, sizes, results, step, only=everything)
    return finish(results, started, args.output, render)


def feed_scenarios(
    stack: Stack,
    sizes: Sizes,
    results: dict[str, Any],
    step: Callable[[str], None],
    *,
    only: Sequence[str],
) -> None:
    if "feed" in only:
        step(f"fan-out to {sizes.feed_fanout} contacts with and without the feed, feed read")
        results["feed"] = feeds.feed_fanout(stack, sizes.feed_fanout)
    if "export" in only or "api_load" in only:
        step(f"export of {sizes.export_contacts // 10} and {sizes.export_contacts} contacts")
        results["export"] = feeds.export(stack, sizes.export_contacts)
    if "api_load" in only:
        step(f"API under 50 concurrent clients for {sizes.api_load_s:g} s")
        results["api_load"] = feeds.api_load(stack, sizes.api_load_s)
    if "verify" in only:
        step(
            f"verify of {', '.join(f'{n:,}' for n in sizes.verify_contacts)} contacts against a "
            f"raw scan plus bare paging; repair of {sizes.repair_ids:,} drifted ids"
        )
        results["verify"] = verify.verify(stack, sizes.verify_contacts, sizes.repair_ids)
    if "scale" in only:
        step(
            f"real-org run: {sizes.scale_contacts // 10:,} accounts, {sizes.scale_contacts:,} "
            f"contacts through `acctsync cycle` and {scale.WORKERS} workers"
        )
        results["scale"] = scale.scale(
            stack, sizes.scale_contacts, changed_accounts=sizes.changed_accounts
        )


def finish(
    results: dict[str, Any],
    started: float,
    output: Path,
    render_table: Callable[[dict[str, Any]], str],
) -> int:
    results["duration_s"] = round(time.monotonic() - started, 1)
    table = render_table(results)
    print(table)
    results["table"] = table
    results["complete"] = True
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nfigures written to {output}", file=sys.stderr)
    return 0


def machine() -> dict[str, Any]:
    import os

    import psutil

    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    sys.exit(main())
