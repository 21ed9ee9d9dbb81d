"""Rows as the Web API writes them: selected properties, etag, nulls for hidden columns and,
when the Prefer header asks, lookup and formatted-value annotations.

A Projection is built once per request and then renders thousands of rows with a tight loop,
so a page of 5,000 rows costs a few milliseconds before JSON encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from acctsync.sim.odata import Preferences, property_not_found
from acctsync.sim.schema import LOOKUP_TYPE_COLUMNS, NAVIGATION_PROPERTIES, Attribute, Table
from acctsync.sim.store import Row, Value

FORMATTED: Final = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME: Final = "Microsoft.Dynamics.CRM.lookuplogicalname"
NAVIGATION_PROPERTY: Final = "Microsoft.Dynamics.CRM.associatednavigationproperty"

# (target table, id) -> the primary name of the target, for lookup formatted values.
NameLookup = Callable[[str, str], str | None]


def select_columns(
    table: Table, select: list[str] | None, deleted: frozenset[str] = frozenset()
) -> list[Attribute]:
    """The columns a $select names (all readable ones without it), in the order returned;
    a deleted column is no property of the entity type any more."""
    if select is None or "*" in select:
        columns = [c for c in table.selectable if c.logical_name not in deleted]
    else:
        columns = []
        for name in select:
            attribute = table.web_property(name)
            if attribute is None or attribute.logical_name in deleted:
                raise property_not_found(name, f"Microsoft.Dynamics.CRM.{table.logical_name}")
            if attribute not in columns:
                columns.append(attribute)
    primary = table.attribute(table.primary_id)
    assert primary is not None
    if primary not in columns:
        columns.append(primary)
    currency = table.attribute("transactioncurrencyid")
    if (
        currency is not None
        and currency not in columns
        and any(c.attribute_type == "Money" for c in columns)
    ):
        # Money values mean nothing without their currency, so Dataverse adds it.
        columns.append(currency)
    return columns


def _format(attribute: Attribute, value: Value) -> str | None:
    kind = attribute.attribute_type
    if kind in ("Picklist", "State", "Status") and isinstance(value, int):
        return attribute.options.get(value)
    if kind == "Boolean" and isinstance(value, bool):
        return attribute.options.get(int(value))
    if kind == "Money" and isinstance(value, int | float):
        return f"${value:,.2f}"
    if kind == "Integer" and isinstance(value, int):
        return f"{value:,}"
    if kind in ("Decimal", "Double") and isinstance(value, int | float):
        return f"{value:,.{attribute.precision or 2}f}"
    if kind == "DateTime" and isinstance(value, str):
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        hour = moment.hour % 12 or 12
        suffix = "AM" if moment.hour < 12 else "PM"
        return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d} {suffix}"
    return None


class Projection:
    def __init__(
        self,
        table: Table,
        columns: Sequence[Attribute],
        hidden: frozenset[str],
        preferences: Preferences,
        names: NameLookup,
    ) -> None:
        self.table = table
        self.names = names
        # (web property, logical name or None when the caller may not read it, attribute)
        self.columns = [
            (
                c.web_name,
                None if c.logical_name in hidden or not c.valid_for_read else c.logical_name,
                c,
            )
            for c in columns
        ]
        self.formatted = preferences.wants(FORMATTED)
        self.lookup_names = preferences.wants(LOOKUP_LOGICAL_NAME)
        self.navigation = preferences.wants(NAVIGATION_PROPERTY)
        self.annotated = self.formatted or self.lookup_names or self.navigation

    def render(self, row: Row) -> dict[str, object]:
        values = row.values
        out: dict[str, object] = {"@odata.etag": f'W/"{row.version}"'}
        if not self.annotated:
            for web, logical, _ in self.columns:
                out[web] = values.get(logical) if logical else None
            return out
        for web, logical, attribute in self.columns:
            value = values.get(logical) if logical else None
            if value is not None:
                self._annotate(out, web, attribute, value, values)
            out[web] = value
        return out

    def _annotate(
        self,
        out: dict[str, object],
        web: str,
        attribute: Attribute,
        value: Value,
        values: dict[str, Value],
    ) -> None:
        if not attribute.is_lookup:
            if self.formatted:
                formatted = _format(attribute, value)
                if formatted is not None:
                    out[f"{web}@{FORMATTED}"] = formatted
            return
        type_column = LOOKUP_TYPE_COLUMNS.get(attribute.logical_name)
        target = values.get(type_column) if type_column else attribute.targets[0]
        if not isinstance(target, str) or not isinstance(value, str):
            return
        if self.formatted:
            name = self.names(target, value)
            if name is not None:
                out[f"{web}@{FORMATTED}"] = name
        if self.navigation:
            navigation = NAVIGATION_PROPERTIES.get((attribute.logical_name, target))
            if navigation is not None:
                out[f"{web}@{NAVIGATION_PROPERTY}"] = navigation
        if self.lookup_names:
            out[f"{web}@{LOOKUP_LOGICAL_NAME}"] = target
