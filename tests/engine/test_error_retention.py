"""Sync Errors are kept for SYNC_ERROR_RETENTION_DAYS and the change feeds' entries for
FEED_RETENTION_DAYS, and removed by the cycle, not by hand; a cycle whose planning fails
leaves a job-level error naming its fix."""

from __future__ import annotations

import pytest

from acctsync.runner import CycleFailed, run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.feed_index import now_ms
from shared.services import Services, get_services, reset_services
from shared.state.sync_errors import ErrorCode, ErrorFilter
from tests.utils.feed import plant_old_entry


def plant(services: Services, record_id: str) -> None:
    services.errors.record(
        entity="contact",
        record_id=record_id,
        operation="update",
        message="a value the mirror cannot hold",
        cycle_id="c-1",
        code=ErrorCode.UNSTORABLE_VALUE,
    )


def test_errors_outlive_cycles_within_the_retention_and_go_after_it(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(services, "kept-row")
    run_cycle_now(services)  # the default retention: 30 days
    assert [e.record_id for e in services.errors.latest(10)] == ["kept-row"]
    assert services.errors.latest(10)[0].code == "unstorable_value"

    monkeypatch.setenv("SYNC_ERROR_RETENTION_DAYS", "0")
    reset_services()
    services = get_services()
    plant(services, "old-row")
    run_cycle_now(services)  # everything recorded before this cycle finished is too old
    assert services.errors.latest(10) == []


def test_a_failed_planning_is_a_job_level_error(
    simulator: SimulatorHandle, services: Services
) -> None:
    simulator.control.set_privilege("app", "prvReadContact", None)
    with pytest.raises(CycleFailed):
        run_cycle_now(services)
    (error,) = services.errors.search(ErrorFilter(code=ErrorCode.PLANNING_FAILED), count=5)
    assert error.entity == "cycle" and error.operation == "plan contacts"
    assert "Fix:" in error.message
    assert services.errors.search(ErrorFilter(text=error.record_id[:12]), count=5) == [error]


def test_a_finished_cycle_removes_feed_entries_past_their_retention(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEED_RETENTION_DAYS", "8")
    reset_services()
    services = get_services()
    day_ms = 24 * 3600 * 1000
    plant_old_entry(services, now_ms() - 9 * day_ms, "nine-days-old")
    plant_old_entry(services, now_ms() - 7 * day_ms, "seven-days-old")
    run_cycle_now(services)
    planted = {"nine-days-old", "seven-days-old"}
    kept = [row["id"] for row in services.feed.table.list_entities() if row.get("id") in planted]
    assert kept == ["seven-days-old"]
