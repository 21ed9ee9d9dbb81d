"""The console's three roles, and how a sign-in's claims map to one.

viewer: every page and read route. operator: also pause and resume, verify, retry errors
(replaying poison is the CLI's). admin: also the field selection, Quick / Advanced Sync (and
cursor resets, the CLI's). In Azure the role comes from the ID token: the app roles assigned
to the user (`roles` claim, values Viewer, Operator, Admin), or the groups mapped to roles in
the settings; the highest one counts. Deny by default: no role, no session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may: each role may do all a lower one may."""
        return self.rank >= needed.rank

    @property
    def rank(self) -> int:
        """The members are declared lowest first."""
        return list(Role).index(self)

    @property
    def app_role(self) -> str:
        """The app role's value on the app registration (what the `roles` claim holds)."""
        return self.value.capitalize()


def role_of(
    *, roles: Iterable[str], groups: Iterable[str], role_groups: Mapping[Role, str]
) -> Role | None:
    """The highest role the claims give: app roles by value (any case), groups by the
    object ids the settings map to roles; None when they give none."""
    values = {str(r).lower() for r in roles}
    member_of = set(groups)
    given = [
        role
        for role in Role
        if role.app_role.lower() in values or role_groups.get(role) in member_of
    ]
    return max(given, key=lambda r: r.rank, default=None)
