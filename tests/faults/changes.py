"""Dynamics changes the fault tests make between cycles: a bit of everything a real org does."""

from __future__ import annotations

import random
from dataclasses import dataclass

from acctsync.sim.harness import SimulatorHandle
from shared.services import Services


@dataclass
class Org:
    """Which contact belongs to which live account, as the tests changed it."""

    parent: dict[str, str]  # contact id -> account id
    accounts: list[str]

    def contacts_of(self, account_id: str) -> list[str]:
        return [c for c, a in self.parent.items() if a == account_id]


def org_from_mirror(services: Services) -> Org:
    """The live accounts and their contacts, read from a mirror (the clean twin's)."""
    accounts = [
        str(e["RowKey"])
        for e in services.accounts.table.list_entities(select=["RowKey", "is_deleted"])
        if not e.get("is_deleted")
    ]
    parent = {contact: account for account, contact in services.members.all()}
    return Org(parent, sorted(accounts))


def change_dynamics(
    simulator: SimulatorHandle, org: Org, rng: random.Random, *, size: int, tag: str
) -> dict[str, int]:
    """Update, move, create and delete accounts and contacts in Dynamics; returns counts."""
    control = simulator.control
    made = {"account_updates": 0, "contact_updates": 0, "moves": 0, "creates": 0, "deletes": 0}
    for account_id in rng.sample(org.accounts, min(size, len(org.accounts))):
        control.update_account(
            account_id,
            {"name": f"{tag} {account_id[:8]}", "numberofemployees": rng.randint(1, 10_000)},
        )
        made["account_updates"] += 1
    contacts = sorted(org.parent)
    for contact_id in rng.sample(contacts, min(size, len(contacts))):
        control.update_contact(contact_id, {"jobtitle": f"{tag} title"})
        made["contact_updates"] += 1
    for contact_id in rng.sample(contacts, min(max(size // 3, 1), len(contacts))):
        target = rng.choice(org.accounts)
        control.update_contact(
            contact_id, {"parentcustomerid": target, "parentcustomertype": "account"}
        )
        org.parent[contact_id] = target
        made["moves"] += 1
    (new_account,) = control.create_accounts([{"name": f"{tag} new", "revenue": 5.0}])
    new_contacts = control.create_contacts(
        [
            {
                "lastname": f"{tag} {i}",
                "parentcustomerid": new_account,
                "parentcustomertype": "account",
            }
            for i in range(3)
        ]
    )
    org.accounts.append(new_account)
    org.parent.update(dict.fromkeys(new_contacts, new_account))
    made["creates"] += 1 + len(new_contacts)
    # Deleting an account deletes its contacts too, as Dataverse does.
    doomed = rng.choice([a for a in org.accounts if a != new_account])
    control.delete_account(doomed)
    org.accounts.remove(doomed)
    for contact_id in org.contacts_of(doomed):
        del org.parent[contact_id]
    made["deletes"] += 1
    lone = rng.choice(sorted(org.parent))
    control.delete_contact(lone)
    del org.parent[lone]
    made["deletes"] += 1
    return made
