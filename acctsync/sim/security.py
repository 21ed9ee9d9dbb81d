"""Column-level (field) security: which columns are secured and who may read them.

A grant stands for a field permission in a field security profile associated with the
principal, so it is what RetrievePrincipalAttributePrivileges reports. Secured columns that a
principal has no read grant for come back as null in rows, as the Web API does.
"""

from __future__ import annotations

from typing import Final

from acctsync.sim.schema import TABLES, Attribute

ALLOWED: Final = 4  # field_security_permission_type: 0 Not Allowed, 4 Allowed
NOT_ALLOWED: Final = 0
# Columns Dataverse never lets an admin secure.
_NEVER_SECURED: Final = frozenset(
    {
        "ownerid",
        "createdon",
        "modifiedon",
        "versionnumber",
        "statecode",
        "statuscode",
        "fullname",
        "firstname",
        "lastname",
    }
)


class FieldSecurityError(ValueError):
    """A field-security change that Dataverse would refuse."""


class FieldSecurity:
    def __init__(self) -> None:
        self.secured: dict[tuple[str, str], bool] = {
            (a.table, a.logical_name): a.secured
            for table in TABLES.values()
            for a in table.attributes
        }
        # principal id -> (table, column) -> can read
        self.grants: dict[str, dict[tuple[str, str], bool]] = {}

    @staticmethod
    def _column(table: str, column: str) -> Attribute:
        schema = TABLES.get(table)
        attribute = schema.attribute(column) if schema else None
        if attribute is None or attribute.attribute_of is not None:
            raise FieldSecurityError(f"{table} has no column named {column!r}")
        return attribute

    def set_secured(self, table: str, column: str, secured: bool) -> None:
        attribute = self._column(table, column)
        schema = TABLES[table]
        if secured and (column in _NEVER_SECURED or column == schema.primary_id):
            raise FieldSecurityError(f"column security can't be enabled on {table}.{column}")
        self.secured[(attribute.table, column)] = secured

    def set_read(self, principal_id: str, table: str, column: str, can_read: bool) -> None:
        self._column(table, column)
        self.grants.setdefault(principal_id, {})[(table, column)] = can_read

    def is_secured(self, table: str, column: str) -> bool:
        return self.secured.get((table, column), False)

    def hidden(self, table: str, principal_id: str) -> frozenset[str]:
        """Secured columns of the table that the principal cannot read."""
        grants = self.grants.get(principal_id, {})
        return frozenset(
            column
            for (name, column), secured in self.secured.items()
            if name == table and secured and not grants.get((name, column), False)
        )

    def privileges(self, principal_id: str) -> list[dict[str, object]]:
        """AttributePrivileges for RetrievePrincipalAttributePrivileges."""
        result: list[dict[str, object]] = []
        for (table, column), can_read in self.grants.get(principal_id, {}).items():
            if not self.is_secured(table, column):
                continue
            attribute = TABLES[table].attribute(column)
            assert attribute is not None
            result.append(
                {
                    "AttributeId": attribute.metadata_id,
                    "CanCreate": NOT_ALLOWED,
                    "CanRead": ALLOWED if can_read else NOT_ALLOWED,
                    "CanUpdate": NOT_ALLOWED,
                }
            )
        return result
