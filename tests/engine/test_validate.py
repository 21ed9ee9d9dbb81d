"""`acctsync validate` and GET /api/sync/validate: every check passes on a set-up that is right,
and each one fails, once, on a set-up broken the way it watches for, naming the fix."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from acctsync.runner import run_cycle_now, run_verify_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.settings import Settings
from shared.setup.report import CheckResult
from shared.setup.validate import validate
from shared.storage import POISON_QUEUE
from shared.sync.select_fields import select_fields
from shared.times import utcnow
from tests.utils.faults import run
from tests.utils.helpers import TEST_ACTOR, make_account, settle

CHECKS = [
    "settings",
    "entra_token",
    "dataverse_url",
    "privileges",
    "change_tracking",
    "retention",
    "storage",
    "columns",
    "poison",
    "heartbeat",
    "mirror_verified",
]


def checks(env: dict[str, str] | None = None) -> dict[str, CheckResult]:
    results = validate(lambda: Settings.from_env({**os.environ, **(env or {})}))
    assert [r.check for r in results] == CHECKS
    return {r.check: r for r in results}


def test_a_right_set_up_passes_every_check_through_the_cli_and_the_api(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    run_verify_now(services, repair=False, deep=False)
    done = run(["validate", "--json"], dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(done.stdout)
    assert [(r["check"], r["status"]) for r in rows] == [(c, "pass") for c in CHECKS]
    assert all(r["detail"] for r in rows)
    served = api.get("/api/sync/validate")
    assert served.status_code == 200
    assert [(r["check"], r["status"]) for r in served.json()] == [(c, "pass") for c in CHECKS]
    text = run(["validate"], dict(os.environ))
    assert text.returncode == 0 and text.stdout.startswith("PASS  settings")
    assert simulator.env["DATAVERSE_CLIENT_SECRET"] not in done.stdout + text.stdout


# Each case breaks one thing and names the check that must fail and words its fix must say.
Breaker = Callable[[SimulatorHandle, Services], dict[str, str]]


def _env(values: dict[str, str]) -> Breaker:
    return lambda simulator, services: values


def _unset_url(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    return {"DATAVERSE_URL": ""}


def _mfa(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    if simulator.env.get("SIM_USERREALM_443") != "1":
        pytest.skip("msal finds a password sign-in's realm on port 443, which was taken")
    simulator.control.require_mfa()
    return {
        "DATAVERSE_USERNAME": simulator.env["SIM_USERNAME"],
        "DATAVERSE_PASSWORD": simulator.env["SIM_PASSWORD"],
    }


def _wrong_url(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    return {"DATAVERSE_URL": simulator.env["DATAVERSE_URL"] + "/not-dataverse"}


def _not_a_member(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    simulator.control.set_member("app", False)
    return {}


def _local_read(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    simulator.control.set_privilege("app", "prvReadContact", "Local")
    return {}


def _no_change_tracking(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    simulator.control.set_change_tracking("contact", False)
    return {}


def _short_retention(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    simulator.control.set_delta_token_retention(86400)  # one day
    return {"SYNC_INTERVAL_MINUTES": "1440"}


def _deleted_column(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    simulator.control.delete_column("new_longnotes")
    return {}


def _no_storage(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFP"
        "TOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    }


def _poison(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    services.storage.queue(POISON_QUEUE).send_message('{"v": 3}')
    return {}


def _drift_left(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    settle()  # past the second the records were made in: a change then would be pending
    run_cycle_now(services)
    (contact,) = [c for c in services.contacts.table.list_entities()][:1]
    services.contacts.table.delete_entity(contact["PartitionKey"], contact["RowKey"])
    assert run_verify_now(services, repair=False, deep=False).drift_left == 1
    return {}


def _stalled(simulator: SimulatorHandle, services: Services) -> dict[str, str]:
    state = services.schedule.read()
    long_ago = utcnow() - timedelta(hours=3)
    assert services.schedule.write(replace(state, succeeded_at=long_ago, finished_at=long_ago))
    return {"SYNC_INTERVAL_MINUTES": "5"}


CASES: list[tuple[str, Breaker, str, list[str]]] = [
    ("settings", _unset_url, "settings", ["DATAVERSE_URL"]),
    (
        "wrong tenant",
        _env({"DATAVERSE_TENANT_ID": "no-such-tenant.onmicrosoft.com"}),
        "entra_token",
        ["DATAVERSE_TENANT_ID", "Directory (tenant) ID"],
    ),
    (
        "wrong secret",
        _env({"DATAVERSE_CLIENT_SECRET": "not-the-secret"}),
        "entra_token",
        ["DATAVERSE_CLIENT_SECRET", "Value"],
    ),
    ("mfa on the ROPC user", _mfa, "entra_token", ["multi-factor", "client credentials"]),
    # Entra knows no resource at a wrong URL, so the token is what fails (AADSTS500011).
    ("not a Dataverse URL", _wrong_url, "entra_token", ["DATAVERSE_URL", "Environment URL"]),
    ("no application user", _not_a_member, "dataverse_url", ["Application users", "+ New app"]),
    ("read below organization", _local_read, "privileges", ["Organization level"]),
    ("no change tracking", _no_change_tracking, "change_tracking", ["Track changes"]),
    ("retention under the interval", _short_retention, "retention", ["SYNC_INTERVAL_MINUTES"]),
    ("storage unreachable", _no_storage, "storage", ["AzureWebJobsStorage"]),
    ("a selected column deleted", _deleted_column, "columns", ["fields select"]),
    ("poison waiting", _poison, "poison", ["replay-poison"]),
    ("heartbeat stalled", _stalled, "heartbeat", ["acctsync"]),
    ("drift left by a verify", _drift_left, "mirror_verified", ["acctsync verify --repair"]),
]


@pytest.mark.parametrize(("case", "breaker", "check", "words"), CASES, ids=[c[0] for c in CASES])
def test_each_check_fails_once_with_its_fix(
    simulator: SimulatorHandle,
    services: Services,
    case: str,
    breaker: Breaker,
    check: str,
    words: list[str],
) -> None:
    make_account(simulator, "Contoso", 1)
    select_fields(services, ["name", "new_longnotes"], actor=TEST_ACTOR)
    run_cycle_now(services)
    run_verify_now(services, repair=False, deep=False)
    assert all(r.status == "pass" for r in checks().values())
    env = breaker(simulator, services)
    found = checks(env)
    failing = [name for name, result in found.items() if result.status == "fail"]
    assert failing and failing[0] == check, (case, {n: r.detail for n, r in found.items()})
    result = found[check]
    assert result.fix and all(word in result.fix for word in words), (case, result)
    # Only the check at fault and those it keeps from running fail; the rest still pass.
    for name in CHECKS[: CHECKS.index(check)]:
        assert found[name].status == "pass", (case, name, found[name])
    secret = simulator.env["DATAVERSE_CLIENT_SECRET"]
    assert all(secret not in f"{r.detail} {r.fix}" for r in found.values())


def test_write_privileges_warn_and_a_failing_check_exits_non_zero(
    simulator: SimulatorHandle, services: Services, api: httpx.Client
) -> None:
    run_cycle_now(services)
    simulator.control.set_privilege("app", "prvWriteAccount", "Global")
    warned = checks()["privileges"]
    assert warned.status == "warn" and "prvWriteAccount" in warned.detail
    assert warned.fix and "only reads" in warned.fix
    simulator.control.set_change_tracking("account", False)
    done = run(["validate"], dict(os.environ))
    assert done.returncode == 1
    assert "FAIL  change_tracking" in done.stdout and "fix: in Power Apps" in done.stdout
    served = {r["check"]: r for r in api.get("/api/sync/validate").json()}
    assert served["change_tracking"]["status"] == "fail"
    assert served["privileges"]["status"] == "warn"


def test_mirror_verified_warns_until_a_recent_verify_found_no_drift_left(
    simulator: SimulatorHandle, services: Services
) -> None:
    make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    simulator.control.requests(clear=True)
    never = checks()["mirror_verified"]
    assert (never.status, never.detail) == ("warn", "no verify has run yet")
    assert never.fix == "run `acctsync verify`"
    # The check reads what the last verify stored; it never compares the mirror itself.
    assert not any("contacts" in str(e["path"]) for e in simulator.control.requests())

    verified = run_verify_now(services, repair=False, deep=False)
    assert checks()["mirror_verified"].status == "pass"
    off = checks({"VERIFY_INTERVAL_HOURS": "0"})["mirror_verified"]
    assert off.status == "warn" and "scheduled verifies are off" in off.detail
    old = replace(verified, finished_at=utcnow() - timedelta(hours=49))
    services.verifies.finished(old)
    stale = checks()["mirror_verified"]
    assert stale.status == "warn" and "more than 2 x VERIFY_INTERVAL_HOURS" in stale.detail
    assert checks({"VERIFY_INTERVAL_HOURS": "48"})["mirror_verified"].status == "pass"
    services.verifies.finished(replace(verified, error="Dataverse did not answer. Fix: retry"))
    failed = checks()["mirror_verified"]
    assert failed.status == "warn" and "Dataverse did not answer" in failed.detail
    assert failed.fix and "acctsync verify" in failed.fix
