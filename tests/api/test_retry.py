"""Retry failed records over the API: POST /api/sync/errors/retry re-reads the records that
Sync Errors name from Dynamics and applies them; each error then says how that went."""

from __future__ import annotations

import httpx

from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import fields_of
from shared.services import Services
from shared.state.sync_errors import ErrorCode, ErrorFilter
from tests.utils.helpers import unstorable_accounts


def test_retry_all_resolves_what_was_fixed_and_says_why_the_rest_fails(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    fixed_id, broken_id = unstorable_accounts(simulator, services)

    answer = api.post("/api/sync/errors/retry", json={})
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert (outcome["retried"], outcome["resolved"], outcome["still_failing"]) == (2, 1, 1)
    assert outcome["activities_logged"] == 2  # the fixed account's change, one per contact
    records = {r["id"]: r for r in outcome["records"]}
    assert records[fixed_id]["resolved"] is True
    assert records[broken_id]["resolved"] is False
    assert "1 MiB" in records[broken_id]["message"]
    (skipped,) = outcome["skipped_errors"]
    assert skipped["code"] == "batch_poisoned" and "acctsync replay-poison" in skipped["reason"]
    row = services.accounts.get(fixed_id)
    assert row is not None and fields_of(row)["new_longnotes"] == "Short notes"

    unstorable = ErrorFilter(code=ErrorCode.UNSTORABLE_VALUE)
    retried = [e for e in services.errors.search(unstorable, count=10) if e.retried_at]
    shown = {e.record_id: e for e in retried}
    assert shown[fixed_id].resolved is True
    assert shown[broken_id].resolved is False and "1 MiB" in shown[broken_id].retry_message

    # Resolved errors are not retried again; the one still failing is.
    again = api.post("/api/sync/errors/retry", json={"code": "unstorable_value"}).json()
    assert [r["id"] for r in again["records"]] == [broken_id]


def test_retry_by_id_and_by_code(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    fixed_id, _ = unstorable_accounts(simulator, services)

    poisoned = api.post("/api/sync/errors/retry", json={"code": "batch_poisoned"}).json()
    assert (poisoned["retried"], poisoned["skipped"]) == (0, 1)
    by_id = api.post("/api/sync/errors/retry", json={"ids": [fixed_id.upper()]}).json()
    assert [(r["id"], r["resolved"]) for r in by_id["records"]] == [(fixed_id, True)]
    unknown = api.post("/api/sync/errors/retry", json={"ids": ["not-an-error"]}).json()
    assert unknown["retried"] == 0
    assert unknown["skipped_errors"][0]["reason"] == "no sync error names this id"


def test_an_unknown_code_is_a_422_in_the_error_shape(api: httpx.Client) -> None:
    answer = api.post("/api/sync/errors/retry", json={"code": "no_such_code"})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "unknown_error_code" and "unstorable_value" in error["message"]
    extra = api.post("/api/sync/errors/retry", json={"everything": True})
    assert extra.status_code == 422 and extra.json()["error"]["code"] == "invalid_body"
