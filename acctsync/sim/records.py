"""Checks and completes the rows the control surface writes, as Dataverse would on save.

Values use logical names (`parentcustomerid` plus `parentcustomertype` for the Customer
lookup). Read-only columns are refused, state and status are kept consistent, the contact's
full name is composed, money columns get the org currency, and lookups must point at rows
that exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from acctsync.sim.columns import Columns
from acctsync.sim.org import Org
from acctsync.sim.schema import STATUS_CODES, Attribute, Table
from acctsync.sim.store import Row, Store, StoreError, Value

# Control-surface spelling -> the column it sets.
_ALIASES: Final = {"parentcustomertype": "parentcustomeridtype"}
_WRITABLE_DERIVED: Final = frozenset({"parentcustomeridtype", "owneridtype"})
_INT32: Final = (-(2**31), 2**31 - 1)
# What a new row gets for a column the create does not name, as Dataverse's defaults give.
_DEFAULTS: Final[dict[str, Value]] = {"donotemail": False, "new_synctomkto": True}
_DEFAULT_STATUS: Final = {state: status for status, (_, state) in STATUS_CODES.items()}


class RecordError(ValueError):
    """A row the control surface refuses; the message says what is wrong."""


def _guid(value: object, column: str) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{column} must be a GUID string, not {value!r}")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise RecordError(f"{column} must be a GUID, not {value!r}") from None


def _converter(attribute: Attribute) -> Callable[[object], Value]:
    name = attribute.logical_name
    kind = attribute.attribute_type

    def text(value: object) -> Value:
        if value is None:
            return None
        if not isinstance(value, str):
            raise RecordError(f"{name} must be a string, not {value!r}")
        if attribute.max_length is not None and len(value) > attribute.max_length:
            raise RecordError(f"{name} is longer than its maximum of {attribute.max_length}")
        return value

    def in_range(value: float) -> None:
        # Dataverse refuses a value outside the column's MinValue..MaxValue on save.
        low, high = attribute.min_value, attribute.max_value
        if (low is not None and value < low) or (high is not None and value > high):
            raise RecordError(
                f"The value {value} of {name!r} on record of type {attribute.table!r} is "
                f"outside the valid range. Accepted Values: {_number(low)} to {_number(high)}"
            )

    def integer(value: object) -> Value:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{name} must be an integer, not {value!r}")
        if kind == "Integer" and not _INT32[0] <= value <= _INT32[1]:
            raise RecordError(f"{name} is outside the Integer range")
        in_range(value)
        return value

    def number(value: object) -> Value:
        """Money, Decimal and Double: a number in range, rounded to the column's precision
        (money to 4 places, as Dataverse stores it whatever the currency shows)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecordError(f"{name} must be a number, not {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise RecordError(f"{name} must be a finite number, not {value!r}")
        in_range(value)
        places = 4 if kind == "Money" else attribute.precision
        return round(float(value), places if places is not None else 10)

    def boolean(value: object) -> Value:
        if not isinstance(value, bool):
            raise RecordError(f"{name} must be true or false, not {value!r}")
        return value

    def choice(value: object) -> Value:
        if value is None and kind == "Picklist":
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value not in attribute.options:
            raise RecordError(f"{name} must be one of {sorted(attribute.options)}, not {value!r}")
        return value

    def moment(value: object) -> Value:
        if not isinstance(value, str):
            raise RecordError(f"{name} must be an ISO-8601 date-time string, not {value!r}")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(f"{name} must be an ISO-8601 date-time, not {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def lookup(value: object) -> Value:
        return None if value is None else _guid(value, name)

    def entity_name(value: object) -> Value:
        if value is None or (isinstance(value, str) and value in attribute_targets(attribute)):
            return value
        raise RecordError(f"{name} must be one of {attribute_targets(attribute)}, not {value!r}")

    converters: dict[str, Callable[[object], Value]] = {
        "String": text,
        "Memo": text,
        "Integer": integer,
        "BigInt": integer,
        "Money": number,
        "Decimal": number,
        "Double": number,
        "Boolean": boolean,
        "Picklist": choice,
        "State": choice,
        "Status": choice,
        "DateTime": moment,
        "Lookup": lookup,
        "Owner": lookup,
        "Customer": lookup,
        "EntityName": entity_name,
    }
    return converters[kind]


def _number(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if value == int(value) else repr(value)


def attribute_targets(attribute: Attribute) -> tuple[str, ...]:
    """The tables an EntityName column may name: the targets of the lookup it belongs to."""
    return {"parentcustomeridtype": ("account", "contact"), "owneridtype": ("systemuser", "team")}[
        attribute.logical_name
    ]


class RecordWriter:
    """Validates control-surface rows against one table and writes them to the store."""

    def __init__(
        self, store: Store, org: Org, table: Table, columns: Columns | None = None
    ) -> None:
        self.store = store
        self.org = org
        self.table = table
        self.columns = columns
        self._converters = {
            a.logical_name: _converter(a)
            for a in table.attributes
            if (a.attribute_of is None or a.logical_name in _WRITABLE_DERIVED)
            and not a.read_only
            and a.attribute_type not in ("Uniqueidentifier", "Virtual")
        }
        self._money = [a.logical_name for a in table.attributes if a.attribute_type == "Money"]

    def create(self, fields: Mapping[str, object]) -> Row:
        row_id = fields.get(self.table.primary_id)
        new_id = _guid(row_id, self.table.primary_id) if row_id is not None else str(uuid.uuid4())
        values = self._convert(fields, creating=True)
        defaults: dict[str, Value] = {"statecode": 0, "statuscode": 1}
        deleted = self._deleted()
        # A column deleted now gives no default: the row has no value for it when it returns.
        defaults |= {
            k: v
            for k, v in _DEFAULTS.items()
            if self.table.attribute(k) is not None and k not in deleted
        }
        owner = self.org.owners[0]
        defaults |= {"ownerid": owner.id, "owneridtype": owner.kind}
        values = {**defaults, **values}
        self._complete(values, None)
        return self.store.insert(self.table.logical_name, new_id, values)

    def update(self, row_id: str, fields: Mapping[str, object], *, tracked: bool = True) -> Row:
        """`tracked` False: a change no delta link ever returns (a fault to plant)."""
        row = self.store.get(self.table.logical_name, row_id)
        if row is None:
            raise StoreError(404, f"{self.table.logical_name} With Id = {row_id} Does Not Exist")
        if self.table.primary_id in fields:
            raise RecordError(f"{self.table.primary_id} cannot be changed")
        values = self._convert(fields, creating=False)
        self._complete(values, row)
        return self.store.update(self.table.logical_name, row_id, values, tracked=tracked)

    def _deleted(self) -> frozenset[str]:
        if self.columns is None:
            return frozenset()
        return self.columns.deleted(self.table.logical_name)

    def _convert(self, fields: Mapping[str, object], *, creating: bool) -> dict[str, Value]:
        values: dict[str, Value] = {}
        deleted = self._deleted()
        for key, raw in fields.items():
            if key == self.table.primary_id and creating:
                continue
            name = _ALIASES.get(key, key)
            if name in deleted:
                raise RecordError(
                    f"{self.table.logical_name}.{name} is deleted; restore it before writing it"
                )
            converter = self._converters.get(name)
            if converter is None:
                raise RecordError(f"{self.table.logical_name} has no writable column {key!r}")
            values[name] = converter(raw)
        return values

    def _complete(self, values: dict[str, Value], existing: Row | None) -> None:
        """Derive what Dataverse derives on save and check every lookup target exists."""
        old: Mapping[str, Value] = existing.values if existing else {}
        if "statecode" in values and "statuscode" not in values:
            values["statuscode"] = _DEFAULT_STATUS[int(values["statecode"] or 0)]
        elif "statuscode" in values and "statecode" not in values:
            values["statecode"] = STATUS_CODES[int(values["statuscode"] or 1)][1]
        state, status = values.get("statecode"), values.get("statuscode")
        if state is not None and status is not None and STATUS_CODES[int(status)][1] != state:
            raise RecordError(f"statuscode {status} does not belong to statecode {state}")
        if self.table.logical_name == "contact" and ({"firstname", "lastname"} & values.keys()):
            first = values.get("firstname", old.get("firstname"))
            last = values.get("lastname", old.get("lastname"))
            values["fullname"] = " ".join(str(p) for p in (first, last) if p) or None
        if any(values.get(m) is not None for m in self._money) and not old.get(
            "transactioncurrencyid"
        ):
            values.setdefault("transactioncurrencyid", self.org.currency_id)
        if "transactioncurrencyid" in values and self.table.attribute("exchangerate"):
            # The org has one currency, its base currency, so the rate is always 1.
            values["exchangerate"] = 1.0 if values["transactioncurrencyid"] else None
        self._check_lookups(values, old)

    def _check_lookups(self, values: dict[str, Value], old: Mapping[str, Value]) -> None:
        store, org = self.store, self.org
        if "ownerid" in values:
            principal = org.principal(str(values["ownerid"])) if values["ownerid"] else None
            if principal is None:
                raise RecordError(f"ownerid {values['ownerid']!r} is not a systemuser or team")
            values["owneridtype"] = principal.kind
        for column, target in (("parentaccountid", "account"), ("primarycontactid", "contact")):
            value = values.get(column)
            if isinstance(value, str) and not store.exists(target, value):
                raise RecordError(f"{column}: {target} With Id = {value} Does Not Exist")
        currency = values.get("transactioncurrencyid")
        if currency is not None and currency != org.currency_id:
            raise RecordError(f"transactioncurrencyid {currency!r} is not a currency of the org")
        if "parentcustomerid" in values or "parentcustomeridtype" in values:
            parent = values.get("parentcustomerid", old.get("parentcustomerid"))
            kind = values.get("parentcustomeridtype")
            if parent is None:
                values["parentcustomeridtype"] = None
                return
            parent = str(parent)
            if kind is None:
                # Infer the table the way the single-valued navigation properties would.
                kind = "account" if store.exists("account", parent) else "contact"
            if not store.exists(str(kind), parent):
                raise RecordError(f"parentcustomerid: {kind} With Id = {parent} Does Not Exist")
            values["parentcustomerid"] = parent
            values["parentcustomeridtype"] = kind
