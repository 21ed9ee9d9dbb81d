"""The fixed cast of the simulated organisation: its ids, users, team and currency.

Ids are derived from names so they are the same in every run, which keeps generated demo
data (whose owners point at these users) identical for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from acctsync.sim.schema import stable_id


@dataclass(frozen=True)
class Principal:
    """A systemuser or team that can own rows; `kind` is its table's logical name."""

    id: str
    name: str
    kind: str = "systemuser"


@dataclass(frozen=True)
class Org:
    organization_id: str = stable_id("organization")
    business_unit_id: str = stable_id("businessunit")
    name: str = "acctsync simulator"
    # The application user bound to the app registration (client credentials).
    app_user: Principal = Principal(stable_id("systemuser", "app"), "# acctsync")
    # The licensed sync user that signs in with username and password (ROPC).
    sync_user: Principal = Principal(stable_id("systemuser", "sync"), "Dynamics Sync User")
    owners: tuple[Principal, ...] = field(
        default_factory=lambda: (
            *(
                Principal(stable_id("systemuser", name), name)
                for name in (
                    "Alex Wilber",
                    "Megan Bowen",
                    "Isaiah Langer",
                    "Lidia Holloway",
                    "Diego Siciliani",
                )
            ),
            Principal(stable_id("team", "sales"), "Sales Team", "team"),
        )
    )
    currency_id: str = stable_id("transactioncurrency", "USD")
    currency_name: str = "US Dollar"

    def principal(self, principal_id: str) -> Principal | None:
        for principal in (self.app_user, self.sync_user, *self.owners):
            if principal.id == principal_id:
                return principal
        return None

    def systemuser(self, principal_id: str) -> Principal | None:
        principal = self.principal(principal_id)
        return principal if principal is not None and principal.kind == "systemuser" else None


ORG: Final = Org()
