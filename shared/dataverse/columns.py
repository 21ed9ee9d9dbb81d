"""Which columns sync, and what of them the sync user can read.

The contact columns are fixed (what the mirror keeps of a person); the account columns are
chosen (Marketo's default mapping until someone selects). Either way a column syncs only while
the org has it and the sync user can read it, which the table's metadata says (`IsValidForRead`,
`IsSecured`) together with the user's own field-security grants.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared.dataverse.problems import DataverseError
from shared.mapping import ColumnLimits, ColumnType, column_type, web_api_property

if TYPE_CHECKING:  # the column lists are needed where no request is ever sent (the apply step)
    from shared.dataverse.client import DataverseClient

ACCOUNT_ID = "accountid"
CONTACT_ID = "contactid"
# Read on every row whatever the selection: the version orders changes, modifiedon dates them.
SYSTEM_COLUMNS = ("versionnumber", "modifiedon")
PARENT_CUSTOMER = "_parentcustomerid_value"
PARENT_TYPE = PARENT_CUSTOMER + "@Microsoft.Dynamics.CRM.lookuplogicalname"
REQUIRED_LEVELS = frozenset({"SystemRequired", "ApplicationRequired"})

CONTACT_COLUMNS: dict[str, ColumnType] = {
    "fullname": ColumnType.STRING,
    "firstname": ColumnType.STRING,
    "lastname": ColumnType.STRING,
    "emailaddress1": ColumnType.STRING,
    "jobtitle": ColumnType.STRING,
    "telephone1": ColumnType.STRING,
    "statecode": ColumnType.CHOICE,
}

# Marketo's default Dynamics account mapping, where the org has the column and it is readable.
DEFAULT_ACCOUNT_COLUMNS = (
    "name",
    "accountnumber",
    "industrycode",
    "revenue",
    "numberofemployees",
    "address1_city",
    "address1_country",
    "telephone1",
    "websiteurl",
    "description",
    "parentaccountid",
    "ownerid",
    "statecode",
)


class Unreadable(StrEnum):
    """Why the sync user cannot read a column."""

    DELETED = "deleted"
    NOT_VALID_FOR_READ = "not_valid_for_read"
    SECURED = "secured"

    @property
    def why(self) -> str:
        return _WHY[self]

    @property
    def leaves_select(self) -> bool:
        """A column the org no longer has must leave `$select` (Dataverse refuses the whole
        query otherwise): the table's chain starts again without it. A secured column stays
        (Dataverse sends it as null), only its values are not applied."""
        return self is not Unreadable.SECURED


_WHY = {
    Unreadable.DELETED: (
        "the column no longer exists in Dynamics (deleted, or its solution uninstalled); its "
        "mirrored values are kept, and it syncs again once it is back"
    ),
    Unreadable.NOT_VALID_FOR_READ: "Dynamics marks the column as not valid for read",
    Unreadable.SECURED: (
        "column security is on and the sync user has no read grant: add the user (or its "
        "team) to a field security profile that allows Read on the column"
    ),
}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: ColumnType
    display_name: str
    secured: bool
    metadata_id: str
    attribute_type: str
    valid_for_read: bool = True
    required: bool = False


@dataclass(frozen=True)
class TableColumns:
    """One table's mirrorable columns as its metadata describes them."""

    table: str
    change_tracking: bool
    columns: dict[str, ColumnInfo]

    def unreadable(self, name: str, grants: SecuredGrants) -> Unreadable | None:
        """Why the sync user cannot read `name`; None when it can. The grants are asked only
        for a secured column."""
        info = self.columns.get(name)
        if info is None:
            return Unreadable.DELETED
        if not info.valid_for_read:
            return Unreadable.NOT_VALID_FOR_READ
        if info.secured and info.metadata_id not in grants.granted():
            return Unreadable.SECURED
        return None


class SecuredGrants:
    """The secured columns the sync user may read (WhoAmI, then
    RetrievePrincipalAttributePrivileges), asked at most once, and only when a secured column
    matters."""

    def __init__(self, client: DataverseClient):
        self.client = client
        self._granted: set[str] | None = None
        self._lock = threading.Lock()

    @property
    def asked(self) -> bool:
        return self._granted is not None

    def granted(self) -> set[str]:
        with self._lock:
            if self._granted is None:
                self._granted = self.client.metadata.readable_secured_columns(
                    self.client.metadata.user_id()
                )
            return self._granted


def read_tables(
    client: DataverseClient, tables: list[str], *, labels: bool = False
) -> dict[str, TableColumns]:
    """The columns of each table, from one metadata request."""
    definitions = client.metadata.table_definitions(tables, labels=labels)
    missing = [t for t in tables if t not in definitions]
    if missing:
        raise DataverseError(
            f"Dataverse has no table {', '.join(missing)}; is DATAVERSE_URL a Dynamics 365 "
            "environment with the standard account and contact tables?"
        )
    return {t: describe(t, definitions[t]) for t in tables}


def describe(table: str, definition: Mapping[str, Any]) -> TableColumns:
    primary = {"account": ACCOUNT_ID, "contact": CONTACT_ID}.get(table)
    columns = {}
    for attribute in definition.get("Attributes", []):
        attribute_type = str(attribute.get("AttributeType", ""))
        kind = column_type(attribute_type)
        name = str(attribute.get("LogicalName", ""))
        if (
            kind is None
            or attribute.get("AttributeOf")
            or attribute.get("IsValidODataAttribute") is False
            or name in (primary, *SYSTEM_COLUMNS)
        ):
            continue
        required = (attribute.get("RequiredLevel") or {}).get("Value") in REQUIRED_LEVELS
        columns[name] = ColumnInfo(
            name,
            kind,
            _label(attribute),
            secured=bool(attribute.get("IsSecured")),
            metadata_id=str(attribute.get("MetadataId", "")).lower(),
            attribute_type=attribute_type,
            valid_for_read=attribute.get("IsValidForRead") is not False,
            required=required,
        )
    return TableColumns(table, definition.get("ChangeTrackingEnabled") is not False, columns)


def column_limits(client: DataverseClient, table: TableColumns) -> dict[str, ColumnLimits]:
    """What Dynamics lets each column of the table hold (one metadata cast per type)."""
    found = client.metadata.column_limits(table.table)
    limits = {}
    for name, info in table.columns.items():
        cast = found.get(name, {})
        options = [
            option.get("Value")
            for set_name in ("OptionSet", "GlobalOptionSet")
            for option in (cast.get(set_name) or {}).get("Options") or []
        ]
        limits[name] = ColumnLimits(
            required=info.required,
            max_length=_whole(cast.get("MaxLength")),
            min_value=_real(cast.get("MinValue")),
            max_value=_real(cast.get("MaxValue")),
            precision=_whole(cast.get("Precision")),
            options=tuple(sorted(int(v) for v in options if isinstance(v, int))) or None,
        )
    return limits


def account_select(columns: Mapping[str, ColumnType]) -> list[str]:
    return [web_api_property(n, t) for n, t in columns.items()] + list(SYSTEM_COLUMNS)


def contact_select(columns: Mapping[str, ColumnType] = CONTACT_COLUMNS) -> list[str]:
    return [*columns, PARENT_CUSTOMER, *SYSTEM_COLUMNS]


def _whole(value: Any) -> int | None:
    return int(value) if _is_number(value) else None


def _real(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(attribute: Mapping[str, Any]) -> str:
    display = attribute.get("DisplayName") or {}
    label = (display.get("UserLocalizedLabel") or {}).get("Label")
    if not label:
        labels = display.get("LocalizedLabels") or []
        label = labels[0].get("Label") if labels else None
    return str(label or attribute.get("LogicalName", ""))
