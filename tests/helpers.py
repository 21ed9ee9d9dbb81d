"""Helpers shared by the tests."""

from __future__ import annotations

from acctsync.sim.harness import SimulatorHandle


def make_account(
    simulator: SimulatorHandle, name: str, contacts: int, **fields: object
) -> tuple[str, list[str]]:
    """An account with `contacts` contacts, created in Dynamics (the simulator)."""
    (account_id,) = simulator.control.create_accounts([{"name": name, "revenue": 1000.0, **fields}])
    contact_ids = (
        simulator.control.create_contacts(
            [
                {
                    "firstname": name,
                    "lastname": f"person {i}",
                    "parentcustomerid": account_id,
                    "parentcustomertype": "account",
                }
                for i in range(contacts)
            ]
        )
        if contacts
        else []
    )
    return account_id, contact_ids
