"""Failures that show: a planning step that fails says when, what and the fix in status, the
sync is called stalled, and all of it clears once the cause is fixed."""

from __future__ import annotations

from acctsync.runner import CycleFailed, run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.sync.cycle import heartbeat
from shared.sync.reset_cursors import reset_cursors
from shared.sync.status import sync_status
from tests.utils.faults import Oracle, services_for
from tests.utils.helpers import TEST_ACTOR, make_account, summary_of


def test_a_wrong_secret_shows_as_stalled_with_the_fix_and_clears_when_fixed(
    oracle: Oracle, simulator: SimulatorHandle, services: Services, env: dict[str, str]
) -> None:
    make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    assert sync_status(services).health.verdict == "healthy"
    wrong = services_for({**env, "DATAVERSE_CLIENT_SECRET": "not-the-secret"})
    try:
        failed = heartbeat(wrong, owner="wrong", force=True)
        assert failed.action == "failed" and "AADSTS" in (failed.error or "")
        closed = heartbeat(wrong, owner="wrong")
        assert summary_of(closed).status == "failed"
    finally:
        wrong.close()
    status = sync_status(services)
    health = status.health.to_json()
    assert health["verdict"] == "stalled"
    assert "DATAVERSE_CLIENT_SECRET" in health["fix"] and "fails" in health["why"]
    assert status.failures_in_a_row == 1
    last = status.last_failure
    assert last is not None
    assert (last.step, last.needs_action) == ("contacts", True) and last.at
    assert "not-the-secret" not in str(status.to_json())  # a refused secret is never echoed back
    # Retrying changes nothing until someone acts: the next try is an interval away.
    assert heartbeat(services, owner="fixed").action == "idle"

    summary = run_cycle_now(services)  # the secret is right again
    assert summary.status == "succeeded"
    status = sync_status(services)
    assert status.health.verdict == "healthy" and status.failures_in_a_row == 0
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def test_a_mirror_of_another_org_is_said_plainly_and_reset_cursors_goes_on(
    oracle: Oracle, simulator: SimulatorHandle, services: Services, env: dict[str, str]
) -> None:
    account_id, _ = make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    # The stored delta links name another host, as when DATAVERSE_URL points at a new org.
    for cursor in services.cursors.all():
        services.cursors.commit(
            type(cursor)(
                cursor.entity_set,
                cursor.delta_link.replace("127.0.0.1", "localhost"),
                cursor.select,
                cursor.updated_at,
            )
        )
    try:
        run_cycle_now(services)
        raise AssertionError("the cycle went on with links of another org")
    except CycleFailed as failed:
        failure = failed.summary.failure
    assert failure is not None
    assert "the mirror was built from Dataverse at localhost" in failure.message
    assert "acctsync reset-cursors" in failure.fix and failure.needs_action is True
    assert sync_status(services).health.verdict == "stalled"

    assert reset_cursors(services, actor=TEST_ACTOR) == ["accounts", "contacts"]
    simulator.control.update_account(account_id, {"name": "Contoso, re-read"})
    summary = run_cycle_now(services)
    assert summary.modes == {"contacts": "reload", "accounts": "reload"}
    assert summary.status == "succeeded" and summary.activities_logged == 2
    oracle.verify(services)  # faults over: the mirror equals Dynamics
