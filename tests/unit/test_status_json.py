"""The status's typed parts give the JSON `acctsync status` has always printed, and the API's
model answers that JSON key for key, in its order, for every kind of row (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.state.filtered_accounts import FilterState, SyncFilter
from shared.state.results import CycleStatus
from shared.state.resync_queue import ResyncStatus, new_resync
from shared.state.schedule import (
    Checkpoint,
    CyclePlan,
    Failure,
    LoadMode,
    Phase,
    Step,
    TablePlan,
)
from shared.state.summary import CycleSummary, LagSummary, StageSummary
from shared.state.sync_errors import ErrorCode, SyncError
from shared.state.verify import (
    Drift,
    DriftKind,
    TableVerify,
    VerifyRequest,
    VerifyResult,
    VerifyTrigger,
)
from shared.sync.filter import FilterStatus
from shared.sync.health import Health, HeldBatches, Verdict
from shared.sync.status import RunningCycle, SyncStatus
from shared.verify.progress import Stage
from shared.verify.requests import VerifyStatus, VerifyUnderWay
from shared.web.status_models import SyncStatusBody

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
FAILURE = Failure(NOW, Step.CONTACTS, "Dynamics refused the read", "grant prvReadContact")


def _verify_result() -> VerifyResult:
    return VerifyResult(
        id="v1",
        trigger=VerifyTrigger.SCHEDULED,
        started_at=NOW - timedelta(seconds=90),
        finished_at=NOW,
        deep=False,
        repair=True,
        tables=(TableVerify("accounts", 40, 1, {DriftKind.STALE: 12}),),
        samples=tuple(Drift("accounts", f"a{n}", DriftKind.STALE) for n in range(12)),
        repaired=12,
        dataverse_requests=7,
    )


def _request(request_id: str) -> VerifyRequest:
    return VerifyRequest(request_id, VerifyTrigger.REQUESTED, NOW, "ops@host", deep=True)


def _error(**changes: Any) -> SyncError:
    values: dict[str, Any] = {
        "entity": "account",
        "record_id": "'bad id'",
        "operation": "apply",
        "code": ErrorCode.UNSTORABLE_VALUE,
        "message": "a value over 1 MiB",
        "cycle_id": "c1",
        "at": NOW,
    }
    return SyncError(**{**values, **changes})


def _status(*, verify: VerifyStatus) -> SyncStatus:
    plan = CyclePlan(
        tables={"contacts": TablePlan(LoadMode.DELTA, changed=3, pages=1, first_batch=1)},
        batches=1,
        resync="r1",
    )
    finished = CycleSummary(
        "c0",
        CycleStatus.FAILED,
        started_at=NOW - timedelta(hours=1),
        finished_at=NOW - timedelta(minutes=55),
        modes={"contacts": LoadMode.INITIAL},
        stages=(StageSummary("contacts", "contacts", None, None, None, 1, 2, 0, 0, 0, 0, 0, 0),),
        change_lag_s=LagSummary(2, 1.5, 2.0),
        failure=FAILURE,
        duration_s=300.0,
    )
    resync = new_resync("telephone1", now=NOW, by="ops", modified_since=NOW - timedelta(days=1))
    return SyncStatus(
        health=Health(
            Verdict.RECOVERING,
            ("batches held",),
            None,
            NOW,
            timedelta(minutes=30),
            held=(HeldBatches("w1", NOW, "c1", ("b1",)),),
        ),
        pause=None,
        phase=Phase.APPLYING,
        current_cycle="c1",
        current_stage=Step.CONTACTS,
        current_plan=plan,
        checkpoints={"contacts": Checkpoint(LoadMode.RELOAD, "name", "link", rows_read=5)},
        lease_owner="host-1",
        lease_until=NOW,
        last_cycles=(RunningCycle("c1", NOW, Step.CONTACTS, plan, None), finished),
        next_due=None,
        queue_backlog=1,
        poison_count=0,
        cursor_age_s={"contacts": 3.5},
        unreadable_fields=("creditlimit",),
        unreadable_columns={"account": {"creditlimit": "secured"}},
        filtering=FilterStatus(SyncFilter("new_synctomkto", FilterState.ACTIVE, "No: out"), 2),
        resyncs=(resync,),
        verify=verify,
        last_failure=FAILURE,
        failures_in_a_row=1,
        last_errors=(_error(), _error(retried_at=NOW, resolved=False, retry_message="again")),
    )


VERIFIES = {
    "idle": VerifyStatus(None, None, None, None),
    "last and asked for": VerifyStatus(_verify_result(), None, _request("v2"), NOW),
    "not saved yet": VerifyStatus(None, VerifyUnderWay(_request("v3"), saved=False), None, None),
    "at a table": VerifyStatus(
        None, VerifyUnderWay(_request("v3"), True, "contacts", Stage.MIRROR), None, None
    ),
    "repairing": VerifyStatus(None, VerifyUnderWay(_request("v3"), saved=True), None, None),
}


@pytest.mark.parametrize("verify", VERIFIES.values(), ids=VERIFIES.keys())
def test_the_api_model_answers_the_status_json_key_for_key(verify: VerifyStatus) -> None:
    printed = _status(verify=verify).to_json()
    answered = SyncStatusBody(**printed).model_dump(mode="json", exclude_unset=True)
    assert answered == printed
    assert _key_order(answered) == _key_order(printed)


def _key_order(value: object) -> object:
    """Every object's keys, in their order, all the way down."""
    if isinstance(value, dict):
        return [(key, _key_order(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_key_order(item) for item in value]
    return None


def test_a_key_the_models_do_not_know_is_refused_not_dropped() -> None:
    printed = _status(verify=VERIFIES["idle"]).to_json()
    printed["last_errors"][0]["renamed"] = True
    with pytest.raises(ValidationError, match="renamed"):
        SyncStatusBody(**printed)


def test_the_typed_parts_print_what_status_always_printed() -> None:
    printed = _status(verify=VERIFIES["last and asked for"]).to_json()
    assert printed["sync_filter"] == {
        "column": "new_synctomkto",
        "state": "active",
        "detail": "No: out",
    }
    assert printed["filtered_accounts"] == 2
    (resync,) = printed["resyncs"]
    assert list(resync)[:3] == ["id", "field", "kind"] and "next_link" not in resync
    assert resync["status"] == ResyncStatus.QUEUED.value and resync["kind"] == "advanced"
    assert resync["modified_since"] == "2026-02-28T12:00:00Z"
    assert printed["last_errors"][1] == {
        "entity": "account",
        "id": "'bad id'",
        "operation": "apply",
        "code": "unstorable_value",
        "message": "a value over 1 MiB",
        "cycle_id": "c1",
        "at": "2026-03-01T12:00:00Z",
        "retried_at": "2026-03-01T12:00:00Z",
        "resolved": False,
        "retry_message": "again",
    }
    assert printed["last_errors"][0]["retried_at"] is None
    assert printed["last_errors"][0]["resolved"] is None
    verify = printed["verify"]
    assert list(verify) == ["last", "running", "requested", "next_due"]
    assert verify["last"] == {
        "id": "v1",
        "trigger": "scheduled",
        "finished_at": "2026-03-01T12:00:00Z",
        "duration_s": 90.0,
        "deep": False,
        "repair": True,
        "drift": 12,
        "by_kind": {
            "missing": 0,
            "wrongly_deleted": 0,
            "not_deleted": 0,
            "stale": 12,
            "wrong_account": 0,
        },
        "repaired": 12,
        "drift_left": 0,
        "error": None,
        "dataverse_requests": 7,
        "samples": [f"a{n}" for n in range(10)],
    }
    assert verify["requested"] == _request("v2").to_json()
    assert verify["next_due"] == "2026-03-01T12:00:00Z"


@pytest.mark.parametrize(
    ("running", "table", "stage"),
    [
        (VERIFIES["not saved yet"], None, None),
        (VERIFIES["at a table"], "contacts", "mirror"),
        (VERIFIES["repairing"], None, "repair"),
    ],
)
def test_the_verify_under_way_says_where_it_stands(
    running: VerifyStatus, table: str | None, stage: str | None
) -> None:
    shown = running.to_json()["running"]
    assert shown == {**_request("v3").to_json(), "table": table, "stage": stage}


def test_an_error_code_this_version_does_not_know_reads_as_a_plain_sync_error() -> None:
    """A row written by another version (a code added later, or one without a code) still
    lists: status and Sync Errors must not fail on it."""
    row = {k: v for k, v in _error().to_json().items() if k not in ("id", "code")}
    row |= {"record_id": "'bad id'", "at": NOW}
    for stored in ("a_code_from_a_later_version", None):
        error = SyncError.from_row({**row, "code": stored})
        assert error.code is ErrorCode.SYNC_ERROR
        assert error.to_json()["message"] == "a value over 1 MiB"
    assert SyncError.from_row({**row, "code": "bad_row"}).code is ErrorCode.BAD_ROW
