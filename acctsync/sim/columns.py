"""Columns that come and go: a custom column deleted by a maker, and brought back.

While a column is deleted it is gone from everything the Web API serves: the metadata does not
list it, `$select` or `$filter` naming it (a stored next or delta link included) is the usual
"Could not find a property" 400, and rows no longer carry it. Its derived columns (the
...name column of a Two Options column, say) go with it.

Dataverse drops a deleted column's data and a column created again with the same name starts
empty; the simulator keeps the stored values so a test can bring the column back as it was, as
if the values had been imported again. Deleting or restoring a column does not change any row
version: the docs say nothing of deltas after a schema change, and Dataverse's row versions
move on writes to rows.
"""

from __future__ import annotations

from typing import Final

from acctsync.sim.schema import TABLES, Attribute, Table

# Columns every table has that no one can delete, even where the metadata would allow it.
_SYSTEM: Final = frozenset(
    {
        "ownerid",
        "owneridtype",
        "statecode",
        "statuscode",
        "createdon",
        "modifiedon",
        "versionnumber",
        "transactioncurrencyid",
        "exchangerate",
    }
)


class ColumnError(ValueError):
    """A delete or restore that Dataverse (or the simulator) refuses."""


class Columns:
    """Which columns of each table are deleted now. Reset in place: record writers hold it."""

    def __init__(self) -> None:
        self._deleted: dict[str, frozenset[str]] = {name: frozenset() for name in TABLES}

    def reset(self) -> None:
        self._deleted = {name: frozenset() for name in TABLES}

    def deleted(self, table: str) -> frozenset[str]:
        """Logical names of the table's deleted columns, their derived columns included."""
        return self._deleted.get(table, frozenset())

    def live(self, table: Table) -> tuple[Attribute, ...]:
        gone = self._deleted[table.logical_name]
        if not gone:
            return table.attributes
        return tuple(a for a in table.attributes if a.logical_name not in gone)

    @staticmethod
    def _column(table: str, column: str) -> tuple[Table, Attribute]:
        schema = TABLES.get(table)
        if schema is None:
            raise ColumnError(f"no table named {table!r}: one of {sorted(TABLES)}")
        attribute = schema.attribute(column)
        if attribute is None:
            raise ColumnError(f"{table} has no column named {column!r}")
        return schema, attribute

    def delete(self, table: str, column: str, *, absent: bool = False) -> list[str]:
        """Delete a custom column; returns every column that went (derived ones included).

        `absent` takes away a standard column as well, for an org that never had it (a
        Dataverse without the Sales solution has no contact job title, say)."""
        schema, attribute = self._column(table, column)
        if column == schema.primary_id:
            raise ColumnError(f"{table}.{column} is the primary id column; it cannot be deleted")
        if column == schema.primary_name:
            raise ColumnError(f"{table}.{column} is the primary name column; it cannot be deleted")
        if attribute.attribute_of is not None:
            raise ColumnError(
                f"{table}.{column} belongs to {attribute.attribute_of}; delete that column"
            )
        if column in _SYSTEM:
            raise ColumnError(f"{table}.{column} is a system column; it cannot be deleted")
        if not attribute.custom and not absent:
            # Standard columns of standard tables cannot be deleted in Dataverse.
            raise ColumnError(
                f"{table}.{column} is a standard column; only custom columns can be deleted"
            )
        if column in self._deleted[table]:
            raise ColumnError(f"{table}.{column} is already deleted")
        going = [column] + [a.logical_name for a in schema.attributes if a.attribute_of == column]
        self._deleted[table] = self._deleted[table] | set(going)
        return going

    def restore(self, table: str, column: str) -> list[str]:
        """Bring a deleted column back with its values; returns every column that came back."""
        schema, attribute = self._column(table, column)
        if attribute.attribute_of is not None:
            raise ColumnError(
                f"{table}.{column} belongs to {attribute.attribute_of}; restore that column"
            )
        if column not in self._deleted[table]:
            raise ColumnError(f"{table}.{column} is not deleted")
        coming = [column] + [a.logical_name for a in schema.attributes if a.attribute_of == column]
        self._deleted[table] = self._deleted[table] - set(coming)
        return coming
