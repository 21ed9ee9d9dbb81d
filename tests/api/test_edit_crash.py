"""Claim 7 for local edits under failure: an edit that storage fails half-way through (the row
written, its activities not, or not yet marked logged) is completed by the client's retry of
the same PATCH, which logs exactly the activities one successful edit logs, nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ServiceRequestError

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.activities import ActivityWriter
from shared.services import Services, get_services, reset_services
from shared.sync import pending_edits
from tests.utils.feed import SETTLE_S, settle
from tests.utils.helpers import make_account


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Make `owner.name` raise a storage error on its first call; returns the call count."""
    calls: list[int] = []
    original: Callable[..., Any] = getattr(owner, name)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ServiceRequestError("storage went away")
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, flaky)
    return calls


def history(api: httpx.Client, contacts: list[str]) -> list[tuple[str, str, Any, Any]]:
    return sorted(
        (contact_id, a["field"], a["old"], a["new"])
        for contact_id in contacts
        for a in api.get(f"/api/contacts/{contact_id}/activities").json()
    )


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        (ActivityWriter, "flush"),  # the row written, its activities not
        (pending_edits, "replace"),  # the activities logged, the row's record not dropped
    ],
    ids=["before-activities", "after-activities"],
)
def test_a_retry_completes_an_edit_that_failed_half_way(
    api: httpx.Client,
    simulator: SimulatorHandle,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    owner: Any,
    name: str,
) -> None:
    monkeypatch.setenv("ACCTSYNC_FEED_SETTLE_SECONDS", str(SETTLE_S))
    reset_services()
    services = get_services()
    account_id, contacts = make_account(simulator, "Contoso", 3)
    run_cycle_now(services)
    calls = fail_once(monkeypatch, owner, name)
    edit = {"fields": {"name": "Local name", "revenue": 2000.0}}

    # (A server error ends the connection: the retry comes on a new one, as a client's would.)
    crashed = api.patch(
        f"/api/contacts/{contacts[0]}/account", json=edit, headers={"Connection": "close"}
    )
    assert crashed.status_code == 500, crashed.text
    assert calls, "the fault was not reached"

    retried = api.patch(f"/api/contacts/{contacts[0]}/account", json=edit)
    assert retried.status_code == 200, retried.text
    assert retried.json()["activities_logged"] == 6
    expected = sorted(
        (contact_id, field, old, new)
        for contact_id in contacts
        for field, old, new in (("name", "Contoso", "Local name"), ("revenue", 1000.0, 2000.0))
    )
    assert history(api, contacts) == expected
    account = api.get(f"/api/accounts/{account_id}").json()
    assert account["fields"]["name"] == "Local name"
    assert account["locally_modified"] == ["name", "revenue"]
    row = services.accounts.get(account_id)
    assert row is not None and pending_edits.PendingEdit.of(row) is None  # nothing owed

    # Retried again, the edit is done: nothing more is logged.
    again = api.patch(f"/api/contacts/{contacts[1]}/account", json=edit)
    assert again.status_code == 200, again.text
    assert history(api, contacts) == expected
    # The change feed serves each of them once.
    settle()
    token = api.get("/api/activities/pagingtoken", params={"since": "2000-01-01T00:00:00Z"})
    served: list[dict[str, Any]] = []
    page = {"nextPageToken": token.json()["nextPageToken"], "moreResult": True}
    while page["moreResult"]:
        page = api.get("/api/activities", params={"pageToken": page["nextPageToken"]}).json()
        served.extend(page["items"])
    assert sorted((a["contactid"], a["field"], a["old"], a["new"]) for a in served) == expected
