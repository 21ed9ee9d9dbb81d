"""Security-role privileges of the two principals that sign in, as RetrieveUserPrivileges
reports them (RolePrivilege: Depth, PrivilegeId, BusinessUnitId, PrivilegeName).

Each principal holds one role with table privileges at a depth (PrivilegeDepth, serialised by
name: Basic, Local, Deep, Global). By default both may read accounts and contacts at Global
depth, plus the harmless reads every integration role carries, and write nothing. Reads are
checked as Dataverse checks them: no read privilege on a table is a 403, and change tracking
needs the Global depth ("The calling user must have organization level read access to the
table", Use change tracking to synchronize data with external systems).

Depth below Global does not narrow ordinary queries here: the simulated org has one business
unit, so Local and Deep reach every row as Global does; Basic would in Dataverse limit rows to
those the user owns or has shared, which the simulator does not model (no demo row belongs
to either principal).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from acctsync.sim.schema import stable_id

DEPTHS: Final = ("Basic", "Local", "Deep", "Global")
DEFAULT_PRIVILEGES: Final[dict[str, str]] = {
    "prvReadAccount": "Global",
    "prvReadContact": "Global",
    "prvReadSystemUser": "Global",
    "prvReadOrganization": "Global",
}
# Privilege names are prv + access right + table schema name, for the tables the org knows.
_NAME: Final = re.compile(
    r"^prv(Create|Read|Write|Delete|Append|AppendTo|Assign|Share)"
    r"(Account|Contact|SystemUser|Team|BusinessUnit|Organization|TransactionCurrency)$"
)


class PrivilegeError(ValueError):
    """A privilege change the control surface refuses."""


def privilege_id(name: str) -> str:
    """The privilege's id: the same in every run, as a real org's privilege ids are."""
    return stable_id("privilege", name)


class Privileges:
    """The privileges of each signing-in principal (by systemuser id); others hold none."""

    def __init__(self, principals: Iterable[str]) -> None:
        self._principals = tuple(principals)
        self._granted: dict[str, dict[str, str]] = {}
        self._removed: set[str] = set()
        self.reset()

    def reset(self) -> None:
        self._granted = {p: dict(DEFAULT_PRIVILEGES) for p in self._principals}
        self._removed = set()

    def set_member(self, principal_id: str, member: bool) -> None:
        """Add the principal to the environment as a user, or take it out: a token Entra
        issues for an app registration that is no application user of the environment is
        refused by every Web API request (403 0x80072560)."""
        if member:
            self._removed.discard(principal_id)
        else:
            self._removed.add(principal_id)

    def is_member(self, principal_id: str) -> bool:
        return principal_id not in self._removed

    def set(self, principal_id: str, privilege: str, depth: str | None) -> dict[str, str]:
        """Grant `privilege` at `depth`, or take it away with None; returns what is held."""
        if _NAME.match(privilege) is None:
            raise PrivilegeError(
                f"{privilege!r} is not a privilege name like prvReadAccount or prvWriteContact"
            )
        if depth is not None and depth not in DEPTHS:
            raise PrivilegeError(f"depth must be one of {list(DEPTHS)} or null, not {depth!r}")
        granted = self._granted[principal_id]
        if depth is None:
            granted.pop(privilege, None)
        else:
            granted[privilege] = depth
        return dict(granted)

    def depth(self, principal_id: str, privilege: str) -> str | None:
        return self._granted.get(principal_id, {}).get(privilege)

    def count(self, principal_id: str) -> int:
        return len(self._granted.get(principal_id, {}))

    def role_privileges(self, principal_id: str, business_unit_id: str) -> list[dict[str, object]]:
        """RolePrivileges of RetrieveUserPrivilegesResponse, by privilege name.

        RolePrivilege also has RecordFilterId and RecordFilterUniqueName, which only the
        RecordFilter depth uses; the docs do not say whether other privileges carry them as
        null, so they are left out.
        """
        return [
            {
                "Depth": depth,
                "PrivilegeId": privilege_id(name),
                "BusinessUnitId": business_unit_id,
                "PrivilegeName": name,
            }
            for name, depth in sorted(self._granted.get(principal_id, {}).items())
        ]
