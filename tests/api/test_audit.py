"""The audit trail end to end: each admin action through the API and the CLI leaves exactly one
entry naming who did it, with the values before and after and the outcome; GET /api/audit
pages newest first; `acctsync audit` prints NDJSON; nothing in it is a secret; the cycle
removes entries past AUDIT_RETENTION_DAYS."""

from __future__ import annotations

import getpass
import json
import socket
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.state.audit_trail import Actor, ActorKind, AuditAction, AuditEntry, Outcome
from shared.times import utcnow
from tests.utils.faults import cli
from tests.utils.helpers import API_KEY, make_account


def every_entry(api: httpx.Client, *, limit: int = 100) -> list[dict[str, Any]]:
    """The whole trail through the API's pages."""
    entries: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"pageToken": token} if token else {})}
        page = api.get("/api/audit", params=params)
        assert page.status_code == 200, page.text
        entries += page.json()["items"]
        token = page.json()["nextPageToken"]
        if token is None:
            return entries


def assert_no_secret(text: str, simulator: SimulatorHandle) -> None:
    for secret in (API_KEY, simulator.env["DATAVERSE_CLIENT_SECRET"]):
        assert secret not in text
    assert "deltatoken" not in text.lower() and "bearer" not in text.lower()


def test_each_api_action_leaves_one_entry_with_its_values(
    api: httpx.Client, simulator: SimulatorHandle, services: Services
) -> None:
    make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    assert every_entry(api) == []  # a cycle is no admin action

    assert api.put("/api/sync/fields", json={"selected": ["name"]}).status_code == 200
    refused = api.put("/api/sync/fields", json={"selected": ["name", "no_such_column"]})
    assert refused.status_code == 422
    assert api.post("/api/sync/pause", json={"reason": "month-end close"}).status_code == 200
    assert api.post("/api/sync/resume").status_code == 200
    assert api.post("/api/sync/resync", json={"field": "name"}).status_code == 202
    assert api.post("/api/sync/errors/retry", json={}).status_code == 200
    assert api.post("/api/sync/verify", json={"repair": True}).status_code == 202

    entries = every_entry(api, limit=2)  # pages of two: each entry once, newest first
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    actions = [e["action"] for e in reversed(entries)]
    assert actions == [
        "field_selection",
        "field_selection",
        "pause",
        "resume",
        "resync",
        "retry",
        "repair",
    ]
    assert {e["actor"] for e in entries} == {"api key"}
    assert {e["actor_kind"] for e in entries} == {"api_key"}
    chosen, unknown, pause, resume, resync, retry, repair = reversed(entries)
    assert chosen["outcome"] == "succeeded"
    assert "revenue" in chosen["before"]["selected"]  # the default selection, stored
    assert chosen["after"]["selected"] == ["name"] and "revenue" in chosen["after"]["removed"]
    assert unknown["outcome"] == "failed" and "no_such_column" in unknown["detail"]
    assert unknown["before"] == {"selected": ["name"]} and unknown["after"] is None
    assert pause["before"] == {"paused": False}
    assert pause["after"]["paused"] is True and pause["after"]["reason"] == "month-end close"
    assert resume["before"]["reason"] == "month-end close" and resume["after"] == {"paused": False}
    assert resync["before"]["field"] == "name" and resync["after"]["queued"] is True
    assert retry["after"]["retried"] == 0 and repair["after"]["repair"] is True
    assert_no_secret(json.dumps(entries), simulator)


def test_paging_refuses_a_changed_token_and_since_narrows(
    api: httpx.Client, services: Services
) -> None:
    now = utcnow()
    for days in (3, 2, 1):
        services.audit.add(
            AuditEntry(
                now - timedelta(days=days),
                Actor.cli(),
                AuditAction.PAUSE,
                None,
                {"paused": True},
                Outcome.SUCCEEDED,
            )
        )
    first = api.get("/api/audit", params={"limit": 1}).json()
    token = first["nextPageToken"]
    changed = api.get("/api/audit", params={"limit": 1, "pageToken": token[:-3] + "AAA"})
    assert changed.status_code == 400 and changed.json()["error"]["code"] == "invalid_token"
    since = (now - timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = api.get("/api/audit", params={"since": since}).json()["items"]
    assert len(recent) == 2
    bad = api.get("/api/audit", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_time"


def test_each_cli_action_leaves_one_entry_naming_the_user_and_host(
    simulator: SimulatorHandle, services: Services
) -> None:
    make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    for command in (
        ["fields", "select", "name,revenue"],
        ["pause", "--reason", "a data fix in Dynamics"],
        ["resume"],
        ["replay-poison"],
        ["reset-cursors"],
        ["fields", "add", "no_such_column"],  # refused: recorded as failed
    ):
        cli(*command)
    done = cli("audit")
    assert done.returncode == 0, done.stderr
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    assert {(e["actor"], e["actor_kind"]) for e in entries} == {(me, ActorKind.CLI.value)}
    assert Counter(e["action"] for e in entries) == {
        "field_selection": 2,
        "pause": 1,
        "resume": 1,
        "replay": 1,
        "cursor_reset": 1,
    }
    by_action = {e["action"]: e for e in reversed(entries)}  # the newest of each action
    assert by_action["field_selection"]["outcome"] == "failed"
    assert by_action["pause"]["after"]["reason"] == "a data fix in Dynamics"
    assert by_action["replay"]["after"] == {"replayed": 0}
    assert by_action["cursor_reset"]["after"] == {"reset": ["accounts", "contacts"]}
    assert_no_secret(done.stdout, simulator)
    later = cli("audit", "--since", "2999-01-01T00:00:00Z")
    assert later.returncode == 0 and later.stdout == ""
    wrong = cli("audit", "--since", "last week")
    assert wrong.returncode == 2 and "ISO-8601" in wrong.stderr


def test_a_cycle_removes_entries_past_the_retention(
    simulator: SimulatorHandle, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utcnow()
    for days in (400, 10):
        services.audit.add(
            AuditEntry(
                now - timedelta(days=days),
                Actor.api_key(),
                AuditAction.RESUME,
                None,
                None,
                Outcome.SUCCEEDED,
            )
        )
    make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    kept = list(services.audit.every(since=None))
    assert [round((now - e.at).total_seconds() / 86400) for e in kept] == [10]
