"""Which columns sync: the fixed contact columns, the default account selection, and the
account column catalogue with what the sync user can read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.mapping import ColumnType, column_type, web_api_property

if TYPE_CHECKING:  # the column lists are needed where no request is ever sent (the apply step)
    from shared.dataverse.client import DataverseClient

ACCOUNT_ID = "accountid"
CONTACT_ID = "contactid"
# Read on every row whatever the selection: the version orders changes, modifiedon dates them.
SYSTEM_COLUMNS = ("versionnumber", "modifiedon")
PARENT_CUSTOMER = "_parentcustomerid_value"
PARENT_TYPE = PARENT_CUSTOMER + "@Microsoft.Dynamics.CRM.lookuplogicalname"

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


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: ColumnType
    display_name: str
    readable: bool
    secured: bool
    metadata_id: str


def account_select(columns: dict[str, ColumnType]) -> list[str]:
    return [web_api_property(n, t) for n, t in columns.items()] + list(SYSTEM_COLUMNS)


def contact_select() -> list[str]:
    return [*CONTACT_COLUMNS, PARENT_CUSTOMER, *SYSTEM_COLUMNS]


def account_catalogue(client: DataverseClient) -> list[ColumnInfo]:
    """Every mirrorable account column, with whether the sync user can read it.

    Readable means valid for read and, for a secured column, granted to the sync user through
    field security (WhoAmI, then RetrievePrincipalAttributePrivileges).
    """
    attributes = client.attributes("account")
    granted = client.readable_secured_columns(client.user_id())
    catalogue = []
    for attribute in attributes:
        kind = column_type(str(attribute.get("AttributeType", "")))
        name = str(attribute.get("LogicalName", ""))
        if (
            kind is None
            or attribute.get("AttributeOf")
            or attribute.get("IsValidODataAttribute") is False
            or name in (ACCOUNT_ID, *SYSTEM_COLUMNS)
        ):
            continue
        secured = bool(attribute.get("IsSecured"))
        metadata_id = str(attribute.get("MetadataId", "")).lower()
        readable = bool(attribute.get("IsValidForRead", True)) and (
            not secured or metadata_id in granted
        )
        catalogue.append(ColumnInfo(name, kind, _label(attribute), readable, secured, metadata_id))
    return sorted(catalogue, key=lambda c: c.name)


def _label(attribute: dict[str, Any]) -> str:
    display = attribute.get("DisplayName") or {}
    label = (display.get("UserLocalizedLabel") or {}).get("Label")
    if not label:
        labels = display.get("LocalizedLabels") or []
        label = labels[0].get("Label") if labels else None
    return str(label or attribute.get("LogicalName", ""))
