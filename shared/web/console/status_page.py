"""Sync Status: every cycle and its stages with their counts, the queue and what comes next,
filtered by date, table and status, exported as CSV, and charted over the last days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from shared.state.results import CycleStatus
from shared.sync.status import sync_status
from shared.times import parse_iso, utcnow
from shared.web.console.chart import Point, Window, chart
from shared.web.console.filters import DatedQuery, choice, csv_response
from shared.web.console.pages import SessionDep, render
from shared.web.console.verify_card import mirror_check
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
TABLES = ("accounts", "contacts")
STATUSES = tuple(s.value for s in CycleStatus)
CHART_DAYS = 7
MOST_CYCLES = 500
COUNTS = ("new", "updated", "deleted", "failed", "skipped")
CSV_HEADER = (
    "cycle_id", "cycle_status", "stage", "table", "started_at", "ended_at", "duration_s",
    "new", "updated", "deleted", "failed", "skipped", "activities_logged",
    "activities_suppressed",
)  # fmt: skip


@dataclass(frozen=True)
class StatusFilter(DatedQuery):
    """The cycle list's filters: its table and status (anything else is no filter at all)."""

    table: str = ""
    status: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", choice(self.table, TABLES))
        object.__setattr__(self, "status", choice(self.status, STATUSES))


FilterDep = Annotated[StatusFilter, Depends()]


@dataclass
class CycleRow:
    cycle: dict[str, Any]
    stages: list[dict[str, Any]] = field(default_factory=list)


@router.get("/")
def status_page(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    wanted: FilterDep,
    verify: str = "",
) -> Response:
    rows, problem = _rows(services, wanted)
    now = utcnow()
    window = Window(now - timedelta(days=CHART_DAYS), now)
    recent = [c.to_json() for c in services.history.between(window.since, now, count=MOST_CYCLES)]
    current = sync_status(services, cycles=10, errors=0).to_json()
    context = {
        "status": current,
        "rows": rows,
        "filter": wanted,
        "tables": TABLES,
        "statuses": STATUSES,
        "problem": problem,
        "drain": _drain_estimate(current["queue_backlog"], recent),
        "chart": chart(_points(recent), window=window),
        "chart_days": CHART_DAYS,
        "counts": COUNTS,
        "query": request.url.query,
        "mirror": mirror_check(services, services.schedule.read()),
        # After Verify now: queued, or one asked for earlier still waits and runs instead.
        "verify_asked": verify if verify in ("asked", "waiting") else "",
    }
    return render(request, "status.html", context, session=session)


@router.get("/status.csv")
def status_csv(services: ServicesDep, session: SessionDep, wanted: FilterDep) -> Response:
    rows, _ = _rows(services, wanted)
    lines = []
    for row in rows:
        cycle = row.cycle
        for stage in row.stages or [_whole(cycle)]:
            lines.append(
                [cycle.get("cycle_id"), cycle.get("status"), stage.get("stage"), stage.get("table")]
                + [stage.get(k) for k in ("started_at", "ended_at", "duration_s", *COUNTS)]
                + [stage.get("activities_logged"), stage.get("activities_suppressed")]
            )
    return csv_response("acctsync-sync-status.csv", CSV_HEADER, lines)


def _rows(services: ServicesDep, wanted: StatusFilter) -> tuple[list[CycleRow], str | None]:
    since, until, problem = wanted.dates()
    stored = services.history.between(since, until, count=MOST_CYCLES)
    cycles: list[dict[str, Any]] = [c.to_json() for c in stored]
    state = services.schedule.read()
    if (
        state.cycle_id
        and state.started_at
        and not any(c.get("cycle_id") == state.cycle_id for c in cycles)
    ):
        running = sync_status(services, cycles=0, errors=0).to_json()["last_cycles"]
        in_range = (since is None or state.started_at >= since) and (
            until is None or state.started_at <= until
        )
        if in_range:
            cycles = running + cycles
    rows = []
    for cycle in cycles:
        if wanted.status and cycle.get("status") != wanted.status:
            continue
        stages = list(cycle.get("stages") or [])
        if wanted.table:
            stages = [s for s in stages if s.get("table") == wanted.table]
            if not stages and cycle.get(f"{wanted.table}_changed", 0) == 0:
                continue
        rows.append(CycleRow(cycle, stages))
    return rows, problem


def _whole(cycle: dict[str, Any]) -> dict[str, Any]:
    """A cycle without stage rows (running, or stored by an older version) as one row."""
    return {
        "stage": cycle.get("step") or "",
        "table": "",
        "started_at": cycle.get("started_at"),
        "ended_at": cycle.get("finished_at"),
        "duration_s": cycle.get("duration_s"),
        "failed": cycle.get("errors"),
        "skipped": cycle.get("skipped"),
        "activities_logged": cycle.get("activities_logged"),
        "activities_suppressed": cycle.get("activities_suppressed"),
    }


def _points(cycles: list[dict[str, Any]]) -> list[Point]:
    points = []
    for cycle in cycles:
        if not cycle.get("started_at"):
            continue
        lag = cycle.get("change_lag_s") or {}
        points.append(
            Point(
                parse_iso(cycle["started_at"]),
                int(cycle.get("accounts_applied", 0)) + int(cycle.get("contacts_applied", 0)),
                lag.get("mean_s"),
            )
        )
    return points


def _drain_estimate(backlog: int, cycles: list[dict[str, Any]]) -> str:
    """How long the queue takes to drain at the pace recent cycles applied batches."""
    if not backlog:
        return "nothing waiting"
    batches = sum(int(c.get("batches_applied", 0)) for c in cycles)
    seconds = sum(float(c.get("duration_s", 0.0)) for c in cycles if c.get("batches_applied"))
    if not batches or seconds <= 0:
        return "drain time known once a cycle has applied batches"
    left = backlog * seconds / batches
    return f"drains in about {left:.0f} s" if left < 120 else f"drains in about {left / 60:.0f} min"
