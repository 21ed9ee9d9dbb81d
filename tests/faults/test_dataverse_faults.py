"""Claim 3: Dataverse answering 429 with Retry-After, 5xx, slowly, or dropping the connection
on a large share of requests, for a whole initial load and the deltas after it.

The load finishes with the mirror of a clean run; every retry after a 429 came at least
Retry-After later (measured on the simulator's request log); and when Dataverse fails for good
in the middle of a cycle, the delta links stay where they were, so the next cycle re-reads the
changes that were not applied.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from acctsync.runner import run_cycle_now
from acctsync.sim.faults import FaultInjector, FaultPlan
from acctsync.sim.harness import SimulatorHandle
from shared.dataverse.client import DataverseError
from shared.services import Services
from shared.state.summary import CycleSummary
from shared.sync.cycle import heartbeat
from shared.sync.status import sync_status
from tests.faults.changes import change_dynamics, org_from_mirror
from tests.utils.faults import (
    Figures,
    Oracle,
    assert_same_mirror,
    clean_cycle,
    counts,
    drain,
    scale,
    snapshot,
)
from tests.utils.helpers import summary_of

RETRY_AFTER_S = 2
SLOW_MS = 700
FAULTS: dict[str, Any] = {
    "rate_429": 0.15,
    "rate_5xx": 0.15,
    "rate_drop": 0.15,
    "slow_ms": SLOW_MS,
    "slow_rate": 0.3,
}


def _at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


def tally(log: list[dict[str, Any]]) -> dict[str, int]:
    web = [e for e in log if e["listener"] == "webapi"]
    return {
        "requests": len(web),
        "429": sum(1 for e in web if e["status"] == 429),
        "5xx": sum(1 for e in web if (e["status"] or 0) >= 500),
        "dropped": sum(1 for e in web if e["dropped"]),
        "slow": sum(1 for e in web if e["duration_ms"] >= SLOW_MS),
    }


def retry_waits(log: list[dict[str, Any]]) -> list[float]:
    """For every 429: seconds from its answer to its retry (the next request of the same path
    sent after it). Parallel requests already on their way when the 429 was answered are
    other requests, not retries."""
    web = sorted((e for e in log if e["listener"] == "webapi"), key=_at)
    waits = []
    for entry in web:
        if entry["status"] == 429:
            answered = _at(entry) + entry["duration_ms"] / 1000
            retry = next(
                (_at(e) for e in web if e["path"] == entry["path"] and _at(e) > answered), None
            )
            if retry is not None:
                waits.append(retry - answered)
    return waits


def test_initial_load_and_deltas_through_a_faulty_dataverse(
    oracle: Oracle, simulator: SimulatorHandle, services: Services, twin: Services, figures: Figures
) -> None:
    control = simulator.control
    accounts, contacts = scale(80, 1500), scale(800, 15000)
    control.reset(accounts=accounts, contacts=contacts, seed=31)
    control.set_limits(retry_after_s=RETRY_AFTER_S)
    rng = random.Random(3)
    log: list[dict[str, Any]] = []

    failed_cycles = 0

    def faulty_cycle(seed: int) -> CycleSummary:
        """A cycle under faults; one that fails for good is run again, as the heartbeat does."""
        nonlocal failed_cycles
        control.requests(clear=True)
        control.inject_faults(**FAULTS, seed=seed)
        try:
            for _ in range(5):
                links = {c.entity_set: c.delta_link for c in services.cursors.all()}
                try:
                    return run_cycle_now(services)
                except DataverseError:
                    failed_cycles += 1
                    # Given up mid-cycle: the delta links did not move past what was applied.
                    assert {c.entity_set: c.delta_link for c in services.cursors.all()} == links
            raise AssertionError("five cycles in a row failed")
        finally:
            control.clear_faults()
            log.extend(control.requests(clear=True))

    clean_cycle(twin)
    summaries = [faulty_cycle(seed=1)]

    org = org_from_mirror(twin)
    for round_number in range(scale(6, 40)):
        change_dynamics(simulator, org, rng, size=scale(10, 100), tag=f"round {round_number}")
        clean_cycle(twin)  # faults are off while the twin reads
        summaries.append(faulty_cycle(seed=300 + round_number))

    assert_same_mirror(services, twin)
    injected = tally(log)
    assert min(injected["429"], injected["5xx"], injected["dropped"], injected["slow"]) >= 1
    waits = retry_waits(log)
    assert waits and min(waits) >= RETRY_AFTER_S - 0.05, waits
    # The client counts what it met; a cycle that gave up reports nothing of its own.
    reported = sum(s.dataverse_throttled for s in summaries)
    assert reported == injected["429"] if not failed_cycles else reported <= injected["429"]
    figures.record(
        "dataverse_faults",
        accounts=accounts,
        contacts=contacts,
        cycles=len(summaries),
        cycles_failed_for_good_and_rerun=failed_cycles,
        fault_plan=FAULTS,
        injected=injected,
        share_of_requests_faulted=round(
            (injected["429"] + injected["5xx"] + injected["dropped"]) / injected["requests"], 2
        ),
        retry_after_s=RETRY_AFTER_S,
        shortest_wait_after_429_s=round(min(waits), 3),
        mirror=counts(snapshot(twin)),
        equal_to_clean_run=True,
    )
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def _seed_throttling_eight_requests(rate: float) -> int:
    """A seed whose draws throttle the next 8 requests (the client's whole retry budget)."""
    for seed in range(10_000):
        injector = FaultInjector()
        injector.configure(FaultPlan(rate_429=rate, seed=seed))
        if all(injector.draw().kind == "429" for _ in range(8)):
            return seed
    raise AssertionError("no such seed")


def test_cursor_stays_when_dataverse_fails_mid_cycle(
    oracle: Oracle, simulator: SimulatorHandle, services: Services, twin: Services, figures: Figures
) -> None:
    control = simulator.control
    control.reset(accounts=40, contacts=300, seed=32)
    control.set_limits(retry_after_s=1)
    clean_cycle(twin)
    run_cycle_now(services)
    org = org_from_mirror(twin)
    change_dynamics(simulator, org, random.Random(4), size=10, tag="before the failure")
    clean_cycle(twin)
    links_before = {c.entity_set: c.delta_link for c in services.cursors.all()}

    # The cycle's contacts are read, enqueued and applied; then its accounts fail for good.
    assert heartbeat(services, owner="faults", force=True).action == "planned"
    drain(services)
    control.requests(clear=True)
    control.inject_faults(rate_429=0.9, seed=_seed_throttling_eight_requests(0.9))
    failed = heartbeat(services, owner="faults")
    assert failed.action == "failed" and "kept throttling" in (failed.error or "")
    control.clear_faults()
    web = [e for e in control.requests(clear=True) if e["listener"] == "webapi"]
    assert [e["status"] for e in web] == [429] * 8
    # The accounts step's reads: the table's metadata check, then its changes.
    assert all("accounts" in e["path"] or "EntityDefinitions" in e["path"] for e in web)
    links = {c.entity_set: c.delta_link for c in services.cursors.all()}
    assert links["accounts"] == links_before["accounts"]  # not past the unread changes
    assert links["contacts"] != links_before["contacts"]  # its batches were all enqueued

    # The failed cycle is closed as failed (nothing of it was left to apply); the next one
    # re-reads the accounts from the link that did not move.
    closed = heartbeat(services, owner="faults")
    assert closed.action == "finished" and summary_of(closed).status == "failed"
    failure = summary_of(closed).failure
    assert failure is not None and "kept throttling" in failure.message
    assert sync_status(services).failures_in_a_row == 1
    summary = run_cycle_now(services)
    assert summary.accounts_changed > 0
    assert sync_status(services).failures_in_a_row == 0
    assert_same_mirror(services, twin)
    figures.record(
        "dataverse_fails_mid_cycle",
        throttled_attempts_before_giving_up=8,
        failed_stage="accounts, after the contacts stage was applied",
        delta_links_moved={"contacts": True, "accounts": False},
        equal_to_clean_run_after_next_cycle=True,
    )
    oracle.verify(services)  # faults over: the mirror equals Dynamics
