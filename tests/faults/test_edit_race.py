"""Claim 7: a local edit (PATCH /api/contacts/{id}/account) racing a sync of the same account,
many times over: no edit is lost (each is applied or answered 409) and the newer Dynamics value
wins over an edit made on the older one.

Every applied change, from an edit or from the sync, logs an activity with its old and new
value; with unique values those activities must form one unbroken chain from the first value
to the mirror's final one. A lost update shows as a break: two changes from the same old value.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import to_json
from shared.mirror.records import fields_of
from shared.services import Services
from tests.utils.faults import Figures, Oracle, cycle_by_stages, drain, scale
from tests.utils.helpers import API_KEY as KEY
from tests.utils.helpers import make_account


def chain(activities: list[dict[str, Any]], start: Any) -> list[Any]:
    """The values a field went through, following old -> new from `start`; every activity
    must be used exactly once."""
    by_old: dict[str, list[dict[str, Any]]] = {}
    for activity in activities:
        by_old.setdefault(repr(activity["old"]), []).append(activity)
    for old, followers in by_old.items():
        assert len(followers) == 1, f"two changes from {old}: {followers}"  # a lost update
    values, current = [start], start
    while repr(current) in by_old:
        current = by_old.pop(repr(current))[0]["new"]
        values.append(current)
    assert not by_old, f"changes off the chain: {by_old}"
    return values


def test_local_edits_racing_the_sync(
    oracle: Oracle, api_base: str, simulator: SimulatorHandle, services: Services, figures: Figures
) -> None:
    account_id, contacts = make_account(simulator, "Race Ltd", 3)
    run_cycle_now(services)
    answers: list[tuple[str, int, str]] = []  # (value, status, error code)
    rounds = scale(25, 200)

    def edit(stop: threading.Event, label: str) -> None:
        with httpx.Client(base_url=api_base, headers={"x-functions-key": KEY}, timeout=60) as api:
            number = 0
            while not stop.is_set():
                number += 1
                value = f"local {label} {number}"
                response = api.patch(
                    f"/api/contacts/{contacts[number % len(contacts)]}/account",
                    json={"fields": {"name": value}},
                )
                code = response.json().get("error", {}).get("code", "") if response.text else ""
                answers.append((value, response.status_code, code))

    for round_number in range(rounds):
        dynamics_value = f"dynamics {round_number}"
        simulator.control.update_account(account_id, {"name": dynamics_value})
        stop = threading.Event()
        editors = [
            threading.Thread(target=edit, args=(stop, f"{round_number}.{i}")) for i in range(2)
        ]
        for editor in editors:
            editor.start()
        try:
            # The sync applies while the edits keep coming.
            cycle_by_stages(services, lambda: drain(services), owner="race")
        finally:
            stop.set()
            for editor in editors:
                editor.join(timeout=60)

    # The last word goes to Dynamics: one more change with nobody editing.
    simulator.control.update_account(account_id, {"name": "dynamics final"})
    run_cycle_now(services)
    row = services.accounts.get(account_id)
    assert row is not None
    assert fields_of(row)["name"] == "dynamics final"
    assert row["locally_modified"] == "[]"
    assert to_json(row["version"]) == simulator.control.get_account(account_id)["versionnumber"]

    statuses = {status for _, status, _ in answers}
    assert statuses <= {200, 409}, statuses
    applied = {value for value, status, _ in answers if status == 200}
    refused = {value for value, status, _ in answers if status == 409}
    for contact_id in contacts:
        history = services.activities.for_contact(contact_id, limit=100_000)
        names = chain([a for a in history if a["field"] == "name"], "Race Ltd")
        assert names[-1] == "dynamics final"
        # Every edit answered 200 is in the history; no refused edit left a trace.
        assert applied <= set(names)
        assert not refused & set(names)
        # Every Dynamics value made it in, in order.
        dynamics = [n for n in names if str(n).startswith("dynamics")]
        assert dynamics == [f"dynamics {r}" for r in range(rounds)] + ["dynamics final"]
    figures.record(
        "edit_race",
        rounds=rounds,
        edits=len(answers),
        applied=len(applied),
        answered_409=len(refused),
        codes_409=sorted({code for _, status, code in answers if status == 409}),
        lost_updates=0,
    )
    oracle.verify(services)  # faults over: the mirror equals Dynamics
