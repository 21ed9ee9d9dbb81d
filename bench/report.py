"""The one table `make bench` prints, from the figures it measured."""

from __future__ import annotations

from typing import Any

from bench.ceiling import run_best, warning
from bench.report_loads import (
    changed_rows,
    idle_rows,
    load_rows,
    loads,
    scale_rows,
)
from bench.report_loads import met as _met

HEADER = ("#", "figure", "acctsync", "baseline, same run", "ratio", "goal", "met")


def render(results: dict[str, Any]) -> str:
    rows: list[tuple[str, ...]] = []
    best = run_best(results)
    for label, data in loads(results):
        rows.extend(load_rows("1", label, data, best))
    rows.extend(idle_rows(results))
    rows.extend(changed_rows(results, best))
    changes = results["fanout"]["changes"]
    for change in changes.values():
        size = change["contacts"]
        if "ceiling" in change:
            rows.append(
                (
                    "4",
                    f"fan-out, one field, {size:,} contacts",
                    f"{change['activities_per_s']:,.0f} act/s, {change['wall_s']:.1f} s, "
                    f"{change['storage']['total']} storage ops",
                    f"{change['ceiling']['entities_per_s']:,.0f} ent/s batched"
                    + warning(change["ceiling"], best),
                    f"{change['ceiling']['ratio']:.2f}",
                    ">= 0.75",
                    _met(change["ceiling"]["ratio"] >= 0.75),
                )
            )
        else:
            rows.append(
                (
                    "4",
                    f"fan-out, one field, {size:,} contacts",
                    f"{change['storage']['total']} storage ops, "
                    f"{change['summary']['activities_suppressed']:,} suppressed, "
                    f"{change['wall_s']:.1f} s",
                    "",
                    "",
                    "suppressed = contacts",
                    _met(change["summary"]["activities_suppressed"] == size),
                )
            )
    # Flat: within each kind of work, the largest size needs at most a quarter more memory
    # than the smallest (10x and 20x the data).
    mirrors = [d for _, d in loads(results)]
    first = [
        (f"load {d['contacts']:,} contacts ({d['shape']})", d["load"]["peak_rss_mb"])
        for d in mirrors
    ]
    reloads = [
        (f"re-load {d['contacts']:,} contacts", d["reload"]["peak_rss_mb"])
        for d in mirrors
        if "reload" in d
    ]
    fans = [(f"change, {c['contacts']:,} contacts", c["peak_rss_mb"]) for c in changes.values()]
    for group in (first, reloads, fans):
        peaks = [m for _, m in group]
        flat = max(peaks) <= 1.25 * min(peaks)
        for label, rss in group:
            rows.append(
                (
                    "5",
                    f"peak RSS, {label}",
                    f"{rss:.0f} MB",
                    "",
                    "",
                    "< 200 MB, flat",
                    _met(rss < 200 and flat),
                )
            )
    batch = results["fanout_batch"]
    rows.append(
        (
            "5",
            f"peak RSS, one batch: {batch['accounts']} accounts x {batch['contacts_each']:,} "
            f"contacts x {batch['fields']} fields",
            f"{batch['peak_rss_mb']:.0f} MB; {batch['activities']:,} activities at "
            f"{batch['activities_per_s']:,.0f}/s",
            "",
            "",
            "< 200 MB",
            _met(batch["peak_rss_mb"] < 200),
        )
    )
    for label, data in loads(results):
        if "reload" not in data:
            continue
        again = data["reload"]
        rows.append(
            (
                "8",
                f"re-load {data['accounts']:,} acc + {data['contacts']:,} con ({label})",
                f"{again['records_per_s']:,.0f} rec/s, {again['wall_s']:,.0f} s, "
                f"{again['summary']['deleted']} flagged deleted, "
                f"{again['summary']['activities_logged']} activities",
                f"{again['point_reads']['rows_per_s']:,.0f} rows/s raw point reads",
                f"{again['point_reads']['ratio']:.2f}",
                "",
                "",
            )
        )
    planning = results["planning"]
    rows.append(
        (
            "9",
            f"planning {planning['rows']:,} contacts, a checkpoint per page "
            f"({planning['pages']} pages, {planning['heartbeats']} heartbeats)",
            f"{planning['acctsync_rows_per_s']:,.0f} rows/s",
            f"{planning['bare_rows_per_s']:,.0f} rows/s bare loop, same messages",
            f"{planning['ratio']:.2f}",
            ">= 0.8",
            _met(planning["ratio"] >= 0.8),
        )
    )
    rows.append(
        (
            "9",
            f"longest heartbeat, budget {planning['budget_s']:g} s",
            f"{planning['longest_heartbeat_s']:.2f} s",
            f"budget + longest page: {planning['budget_s'] + planning['longest_page_s']:.2f} s",
            "",
            "<= budget + a page",
            _met(
                planning["longest_heartbeat_s"] <= planning["budget_s"] + planning["longest_page_s"]
            ),
        )
    )
    imports = results["imports"]
    rows.append(
        (
            "10",
            "cold `import function_app` (every new instance)",
            f"{imports['function_app_ms']:,.0f} ms",
            f"{imports['function_app_before_ms']:,.0f} ms before FastAPI ({imports['before_ref']})",
            f"{imports['function_app_before_ms'] / imports['function_app_ms']:.2f}",
            "no slower",
            _met(imports["function_app_ms"] <= 1.1 * imports["function_app_before_ms"]),
        )
    )
    rows.append(
        (
            "10",
            "cold import of the HTTP app (first request only)",
            f"{imports['web_app_ms']:,.0f} ms",
            "",
            "",
            "",
            "",
        )
    )
    paging = results["paging"]
    rows.append(
        (
            "6",
            f"Dataverse paging, {paging['rows']:,} accounts ({paging['pages']} pages)",
            f"{paging['client_rows_per_s']:,.0f} rows/s ({paging['client_s']:.1f} s)",
            f"{paging['bare_rows_per_s']:,.0f} rows/s bare httpx",
            f"{paging['ratio']:.2f}",
            ">= 0.9",
            _met(paging["ratio"] >= 0.9),
        )
    )
    scale = results["scaleout"]
    one = scale["runs"][min(scale["runs"], key=int)]["records_per_s"]
    for run in scale["runs"].values():
        rows.append(
            (
                "7",
                f"apply, {run['workers']} worker process(es), {scale['records']:,} records",
                f"{run['records_per_s']:,.0f} rec/s; CPU s: workers {run['workers_cpu_s']:.0f}, "
                f"Azurite {run['azurite_cpu_s']:.0f}; {run['cores_busy']:.2f} cores busy",
                "",
                f"{run['records_per_s'] / one:.2f}x",
                "",
                "",
            )
        )
    single = results["single_upserts"]
    rows.append(
        (
            "-",
            "raw single upserts, one at a time",
            "",
            f"{single['entities_per_s']:,.0f} ent/s",
            "",
            "",
            "",
        )
    )
    rows.extend(feed_rows(results))
    rows.extend(verify_rows(results))
    return _table(rows)


def render_alone(results: dict[str, Any]) -> str:
    """The table of the scenarios that run alone (`--only`): lists, feeds, exports, verify,
    the real-org run."""
    return _table(feed_rows(results) + verify_rows(results) + scale_rows(results))


def feed_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows 11-14: the feed's index in a fan-out, the feed read, exports, the API under load
    (those that ran)."""
    rows: list[tuple[str, ...]] = []
    feed = results.get("feed")
    if feed:
        rows.append(
            (
                "11",
                f"fan-out, one field, {feed['contacts']:,} contacts, with the feed's index",
                f"{feed['with_per_s']:,.0f} act/s, {feed['with_s']:.2f} s, "
                f"{feed['entities_written_with']:,} entities",
                f"{feed['without_per_s']:,.0f} act/s without it "
                f"({feed['entities_written_without']:,} entities)",
                f"{feed['ratio']:.2f}",
                ">= 0.8",
                _met(feed["ratio"] >= 0.8),
            )
        )
        ceiling = feed["ceiling"]
        rows.append(
            (
                "11",
                "same, against the raw batched ceiling of its entities",
                f"{feed['with_s']:.2f} s",
                f"{ceiling['entities_per_s']:,.0f} ent/s batched ({ceiling['seconds']:.2f} s)"
                + warning(ceiling, run_best(results)),
                f"{ceiling['ratio']:.2f}",
                ">= 0.75",
                _met(ceiling["ratio"] >= 0.75),
            )
        )
        read = feed["read"]
        rows.append(
            (
                "12",
                f"activity feed read, {read['entries']:,} activities, as an export reads it",
                f"{read['feed_per_s']:,.0f} act/s ({read['feed_s']:.2f} s)",
                f"{read['raw_per_s']:,.0f} act/s raw partition query",
                f"{read['ratio']:.2f}",
                ">= 0.8",
                _met(read["ratio"] >= 0.8),
            )
        )
        if "api_pages_ratio" in read:
            rows.append(
                (
                    "12",
                    "the same feed in the API's pages of 1,000, following their positions",
                    f"{read['api_pages_per_s']:,.0f} act/s ({read['api_pages_s']:.2f} s)",
                    f"{read['raw_per_s']:,.0f} act/s raw partition query",
                    f"{read['api_pages_ratio']:.2f}",
                    ">= 0.8",
                    _met(read["api_pages_ratio"] >= 0.8),
                )
            )
    export = results.get("export")
    if export:
        sizes = list(export["sizes"].values())
        peaks = [size["export_peak_rss_mb"] for size in sizes]
        flat = max(peaks) <= 1.25 * min(peaks)
        for size in sizes:
            rows.append(
                (
                    "13",
                    f"export {size['rows']:,} contacts (ndjson to a file)",
                    f"{size['export_rows_per_s']:,.0f} rows/s, {size['export_s']:.1f} s, "
                    f"peak RSS {size['export_peak_rss_mb']:.0f} MB",
                    f"{size['scan_rows_per_s']:,.0f} rows/s raw scan "
                    f"(peak RSS {size['scan_peak_rss_mb']:.0f} MB)",
                    f"{size['ratio']:.2f}",
                    ">= 0.8, RSS flat",
                    _met(size["ratio"] >= 0.8 and flat),
                )
            )
    load = results.get("api_load")
    if load:
        rows.append(
            (
                "14",
                f"API, {load['clients']} clients reading accounts and contacts, "
                f"{load['seconds']:g} s",
                f"{load['requests_per_s']:,.0f} req/s, p50 {load['p50_ms']:.0f} ms, "
                f"p99 {load['p99_ms']:.0f} ms, {load['errors']} errors; server CPU "
                f"{load['server_cpu_s']:.0f} s, peak RSS {load['server_peak_rss_mb']:.0f} MB",
                _raw_load(load.get("raw")),
                f"{load['ratio']:.2f}" if "ratio" in load else "",
                "no error",
                _met(load["errors"] == 0),
            )
        )
    return rows


def verify_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows 15 and 16: verify against a raw scan of the mirror plus bare paging of Dynamics,
    its peak RSS at each size (flat), and a repair of drifted ids (when they ran)."""
    found = results.get("verify")
    if not found:
        return []
    sizes = list(found["sizes"].values())
    peaks = [size["peak_rss_mb"] for size in sizes]
    flat = max(peaks) <= 1.25 * min(peaks)
    rows: list[tuple[str, ...]] = []
    for size in sizes:
        rows.append(
            (
                "15",
                f"verify {size['accounts']:,} acc + {size['contacts']:,} con",
                f"{size['records_per_s']:,.0f} rec/s, {size['verify_s']:.1f} s, "
                f"{size['dataverse_requests']} Dataverse req, "
                f"peak RSS {size['peak_rss_mb']:.0f} MB",
                f"{size['baseline_records_per_s']:,.0f} rec/s raw scan + bare paging "
                f"({size['scan_s']:.1f} + {size['pages_s']:.1f} s; scans: SDK "
                f"{size.get('sdk_scan_s', size['scan_s']):.1f} s, lean "
                f"{size.get('lean_scan_s', size['scan_s']):.1f} s)",
                f"{size['ratio']:.2f}",
                ">= 0.8, RSS flat",
                _met(size["ratio"] >= 0.8 and flat),
            )
        )
    repair, of = found["repair"], sizes[-1]["contacts"]
    rows.append(
        (
            "16",
            f"verify --repair, {repair['drifted']:,} drifted contacts of {of:,}",
            f"{repair['seconds']:.1f} s, {repair['dataverse_requests']} Dataverse req, "
            f"{repair['repaired']:,} repaired, {repair['drift_after']} drift after",
            "",
            "",
            "all repaired",
            _met(repair["repaired"] == repair["drifted"] and repair["drift_after"] == 0),
        )
    )
    return rows


def _raw_load(raw: dict[str, Any] | None) -> str:
    if not raw:
        return ""
    return (
        f"{raw['requests_per_s']:,.0f} req/s straight from storage, p50 {raw['p50_ms']:.0f} ms, "
        f"p99 {raw['p99_ms']:.0f} ms"
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [HEADER, tuple("-" * w for w in widths), *rows]
    ]
    return "\n".join(lines)
