"""The account and contact tables as Dataverse describes them: columns, types and choices.

Only what the simulator serves is modelled, but every name, type and label follows the
Dataverse reference for the standard tables, so metadata read from the simulator looks like
metadata read from a real org.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Final

# Fixed namespace so metadata ids stay the same across runs, as they do in a real org.
_NAMESPACE: Final = uuid.UUID("5b7c52b1-0f5c-4a61-9c55-2b9d4f0a7e11")


def stable_id(*parts: str) -> str:
    """A GUID derived from names: the same every run."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


# AttributeType -> (AttributeTypeName.Value, @odata.type of the metadata entry).
TYPE_NAMES: Final[dict[str, tuple[str, str]]] = {
    "Uniqueidentifier": ("UniqueidentifierType", "UniqueIdentifierAttributeMetadata"),
    "String": ("StringType", "StringAttributeMetadata"),
    "Memo": ("MemoType", "MemoAttributeMetadata"),
    "Picklist": ("PicklistType", "PicklistAttributeMetadata"),
    "Money": ("MoneyType", "MoneyAttributeMetadata"),
    "Integer": ("IntegerType", "IntegerAttributeMetadata"),
    "BigInt": ("BigIntType", "BigIntAttributeMetadata"),
    "Decimal": ("DecimalType", "DecimalAttributeMetadata"),
    "Double": ("DoubleType", "DoubleAttributeMetadata"),
    "Boolean": ("BooleanType", "BooleanAttributeMetadata"),
    "Lookup": ("LookupType", "LookupAttributeMetadata"),
    "Owner": ("OwnerType", "LookupAttributeMetadata"),
    "Customer": ("CustomerType", "LookupAttributeMetadata"),
    "State": ("StateType", "StateAttributeMetadata"),
    "Status": ("StatusType", "StatusAttributeMetadata"),
    "DateTime": ("DateTimeType", "DateTimeAttributeMetadata"),
    "EntityName": ("EntityNameType", "EntityNameAttributeMetadata"),
    "Virtual": ("VirtualType", "AttributeMetadata"),
}

LOOKUP_TYPES: Final = frozenset({"Lookup", "Owner", "Customer"})
MONEY_TYPES: Final = frozenset({"Money"})

INDUSTRY_CODES: Final[dict[int, str]] = {
    1: "Accounting",
    2: "Agriculture and Non-petrol Natural Resource Extraction",
    3: "Broadcasting Printing and Publishing",
    4: "Brokers",
    5: "Building Supply Retail",
    6: "Business Services",
    7: "Consulting",
    8: "Consumer Services",
    9: "Design, Direction and Creative Management",
    10: "Distributors, Dispatchers and Processors",
    11: "Doctor's Offices and Clinics",
    12: "Durable Manufacturing",
    13: "Eating and Drinking Places",
    14: "Entertainment Retail",
    15: "Equipment Rental and Leasing",
    16: "Financial",
    17: "Food and Tobacco Processing",
    18: "Inbound Capital Intensive Processing",
    19: "Inbound Repair and Services",
    20: "Insurance",
    21: "Legal Services",
    22: "Non-Durable Merchandise Retail",
    23: "Outbound Consumer Service",
    24: "Petrochemical Extraction and Distribution",
    25: "Service Retail",
    26: "SIG Affiliations",
    27: "Social Services",
    28: "Special Outbound Trade Contractors",
    29: "Specialty Realty",
    30: "Transportation",
    31: "Utility Creation and Distribution",
    32: "Vehicle Retail",
    33: "Wholesale",
}
STATE_CODES: Final[dict[int, str]] = {0: "Active", 1: "Inactive"}
# The ranges the Dataverse reference gives: Money columns hold 0 to 100,000,000,000,000 with
# the currency's precision (2), VersionNumber is a SQL bigint.
MONEY_RANGE: Final = (0.0, 100_000_000_000_000.0)
BIGINT_RANGE: Final = (-(2**63), 2**63 - 1)
# statuscode -> (label, the statecode it belongs to)
STATUS_CODES: Final[dict[int, tuple[str, int]]] = {1: ("Active", 0), 2: ("Inactive", 1)}


@dataclass(frozen=True, slots=True)
class Attribute:
    """One column (AttributeMetadata) of a table."""

    table: str
    logical_name: str
    attribute_type: str
    schema_name: str
    display_name: str | None
    max_length: int | None = None
    targets: tuple[str, ...] = ()
    secured: bool = False
    valid_for_read: bool = True
    attribute_of: str | None = None
    custom: bool = False
    # Option labels for Picklist/State/Status/Boolean columns.
    options: dict[int, str] = field(default_factory=dict)
    # The limits of numeric columns (MinValue, MaxValue, Precision) as the reference gives.
    min_value: float | None = None
    max_value: float | None = None
    precision: int | None = None
    # StringFormat of String columns (Text, Email, Url, Phone); Memo columns are TextArea.
    format_name: str | None = None
    # Computed by Dataverse: IsValidForCreate and IsValidForUpdate are false.
    read_only: bool = False
    # DefaultValue of a Boolean (Two Options) column.
    default_value: bool | None = None

    @property
    def metadata_id(self) -> str:
        return stable_id("attribute", self.table, self.logical_name)

    @property
    def is_lookup(self) -> bool:
        return self.attribute_type in LOOKUP_TYPES

    @property
    def web_name(self) -> str:
        """The Web API property name: lookups are exposed as _<name>_value."""
        return f"_{self.logical_name}_value" if self.is_lookup else self.logical_name

    @property
    def selectable(self) -> bool:
        """Whether the column is a property of the Web API entity type (IsValidODataAttribute):
        derived columns such as parentaccountidname exist only in the metadata."""
        return self.attribute_of is None


@dataclass(frozen=True)
class Table:
    """One table (EntityMetadata)."""

    logical_name: str
    schema_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    object_type_code: int
    display_name: str
    display_collection_name: str
    attributes: tuple[Attribute, ...]
    _by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)
    _by_web_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_web_name = {a.web_name: a for a in self.attributes if a.selectable}
        object.__setattr__(self, "_by_name", {a.logical_name: a for a in self.attributes})
        object.__setattr__(self, "_by_web_name", by_web_name)

    @property
    def metadata_id(self) -> str:
        return stable_id("entity", self.logical_name)

    def attribute(self, logical_name: str) -> Attribute | None:
        return self._by_name.get(logical_name)

    def web_property(self, web_name: str) -> Attribute | None:
        """The selectable column behind a Web API property name."""
        return self._by_web_name.get(web_name)

    @property
    def selectable(self) -> tuple[Attribute, ...]:
        return tuple(a for a in self.attributes if a.selectable and a.valid_for_read)


def _common(table: str) -> list[Attribute]:
    """Owner, state, status, audit and version columns that every user-owned table has."""
    a = partial(Attribute, table)
    return [
        a("ownerid", "Owner", "OwnerId", "Owner", targets=("systemuser", "team")),
        a("owneridtype", "EntityName", "OwnerIdType", None, attribute_of="ownerid"),
        a("statecode", "State", "StateCode", "Status", options=STATE_CODES),
        a(
            "statuscode",
            "Status",
            "StatusCode",
            "Status Reason",
            options={k: v[0] for k, v in STATUS_CODES.items()},
        ),
        a("createdon", "DateTime", "CreatedOn", "Created On"),
        a("modifiedon", "DateTime", "ModifiedOn", "Modified On"),
        a(
            "versionnumber",
            "BigInt",
            "VersionNumber",
            "Version Number",
            min_value=BIGINT_RANGE[0],
            max_value=BIGINT_RANGE[1],
            read_only=True,
        ),
        a("owneridname", "String", "OwnerIdName", None, attribute_of="ownerid", max_length=100),
        a("statecodename", "Virtual", "StateCodeName", None, attribute_of="statecode"),
        a("statuscodename", "Virtual", "StatusCodeName", None, attribute_of="statuscode"),
    ]


def _account() -> Table:
    a = partial(Attribute, "account")

    def money(
        name: str, schema_name: str, display_name: str, *, secured: bool = False
    ) -> Attribute:
        low, high = MONEY_RANGE
        return a(
            name,
            "Money",
            schema_name,
            display_name,
            secured=secured,
            min_value=low,
            max_value=high,
            precision=2,
        )

    attributes = [
        a("accountid", "Uniqueidentifier", "AccountId", "Account"),
        a("name", "String", "Name", "Account Name", max_length=160),
        a("accountnumber", "String", "AccountNumber", "Account Number", max_length=20),
        a("industrycode", "Picklist", "IndustryCode", "Industry", options=INDUSTRY_CODES),
        a("industrycodename", "Virtual", "IndustryCodeName", None, attribute_of="industrycode"),
        money("revenue", "Revenue", "Annual Revenue"),
        a(
            "numberofemployees",
            "Integer",
            "NumberOfEmployees",
            "Number of Employees",
            min_value=0,
            max_value=1_000_000_000,
        ),
        a("address1_city", "String", "Address1_City", "Address 1: City", max_length=80),
        a(
            "address1_country",
            "String",
            "Address1_Country",
            "Address 1: Country/Region",
            max_length=80,
        ),
        a(
            "address1_latitude",
            "Double",
            "Address1_Latitude",
            "Address 1: Latitude",
            min_value=-90.0,
            max_value=90.0,
            precision=5,
        ),
        a(
            "address1_longitude",
            "Double",
            "Address1_Longitude",
            "Address 1: Longitude",
            min_value=-180.0,
            max_value=180.0,
            precision=5,
        ),
        a("telephone1", "String", "Telephone1", "Main Phone", max_length=50, format_name="Phone"),
        a("websiteurl", "String", "WebSiteURL", "Website", max_length=200, format_name="Url"),
        a("description", "Memo", "Description", "Description", max_length=2000),
        # A custom multiline column at the longest a Memo column may be (1,048,576 characters).
        a(
            "new_longnotes",
            "Memo",
            "new_LongNotes",
            "Account Notes",
            max_length=1_048_576,
            custom=True,
        ),
        a(
            "donotemail",
            "Boolean",
            "DoNotEMail",
            "Do not allow Emails",
            options={0: "Allow", 1: "Do Not Allow"},
            default_value=False,
        ),
        a("donotemailname", "Virtual", "DoNotEMailName", None, attribute_of="donotemail"),
        # A custom Two Options column that marketing tools key on. Dataverse gives a Two
        # Options column a value on every save, but rows that existed before the column was
        # added keep null until someone writes them, which is what most demo rows stand for.
        # Its default is Yes, as docs/resync.md has it created: a new account syncs unless
        # someone sets No (a default of No would keep every new account out of the sync).
        a(
            "new_synctomkto",
            "Boolean",
            "new_SyncToMkto",
            "Sync to Marketing",
            options={0: "No", 1: "Yes"},
            default_value=True,
            custom=True,
        ),
        a(
            "new_synctomktoname",
            "Virtual",
            "new_SyncToMktoName",
            None,
            attribute_of="new_synctomkto",
        ),
        money("creditlimit", "CreditLimit", "Credit Limit", secured=True),
        a(
            "new_marketingscore",
            "Integer",
            "new_MarketingScore",
            "Marketing Score",
            secured=True,
            custom=True,
            min_value=0,
            max_value=100,
        ),
        # A write-only column, like the password-style columns some solutions add: it exists in
        # the metadata but can never be read back.
        a(
            "new_writeonlytoken",
            "String",
            "new_WriteOnlyToken",
            "Integration Token",
            max_length=100,
            valid_for_read=False,
            custom=True,
        ),
        a("parentaccountid", "Lookup", "ParentAccountId", "Parent Account", targets=("account",)),
        a(
            "parentaccountidname",
            "String",
            "ParentAccountIdName",
            None,
            attribute_of="parentaccountid",
            max_length=160,
        ),
        a(
            "primarycontactid",
            "Lookup",
            "PrimaryContactId",
            "Primary Contact",
            targets=("contact",),
        ),
        a(
            "primarycontactidname",
            "String",
            "PrimaryContactIdName",
            None,
            attribute_of="primarycontactid",
            max_length=160,
        ),
        a(
            "transactioncurrencyid",
            "Lookup",
            "TransactionCurrencyId",
            "Currency",
            targets=("transactioncurrency",),
        ),
        a(
            "transactioncurrencyidname",
            "String",
            "TransactionCurrencyIdName",
            None,
            attribute_of="transactioncurrencyid",
            max_length=100,
        ),
        # Set by Dataverse from the record's currency (1 for the base currency).
        a(
            "exchangerate",
            "Decimal",
            "ExchangeRate",
            "Exchange Rate",
            min_value=0.000000000001,
            max_value=100_000_000_000.0,
            precision=12,
            read_only=True,
        ),
        *_common("account"),
    ]
    return Table(
        logical_name="account",
        schema_name="Account",
        entity_set="accounts",
        primary_id="accountid",
        primary_name="name",
        object_type_code=1,
        display_name="Account",
        display_collection_name="Accounts",
        attributes=tuple(attributes),
    )


def _contact() -> Table:
    a = partial(Attribute, "contact")

    attributes = [
        a("contactid", "Uniqueidentifier", "ContactId", "Contact"),
        # Composed from first and last name by Dataverse.
        a("fullname", "String", "FullName", "Full Name", max_length=160, read_only=True),
        a("firstname", "String", "FirstName", "First Name", max_length=50),
        a("lastname", "String", "LastName", "Last Name", max_length=50),
        a(
            "emailaddress1",
            "String",
            "EMailAddress1",
            "Email",
            max_length=100,
            format_name="Email",
        ),
        a("jobtitle", "String", "JobTitle", "Job Title", max_length=100),
        a(
            "telephone1",
            "String",
            "Telephone1",
            "Business Phone",
            max_length=50,
            format_name="Phone",
        ),
        a(
            "parentcustomerid",
            "Customer",
            "ParentCustomerId",
            "Company Name",
            targets=("account", "contact"),
        ),
        a(
            "parentcustomeridname",
            "String",
            "ParentCustomerIdName",
            None,
            attribute_of="parentcustomerid",
            max_length=160,
        ),
        a(
            "parentcustomeridtype",
            "EntityName",
            "ParentCustomerIdType",
            None,
            attribute_of="parentcustomerid",
        ),
        *_common("contact"),
    ]
    return Table(
        logical_name="contact",
        schema_name="Contact",
        entity_set="contacts",
        primary_id="contactid",
        primary_name="fullname",
        object_type_code=2,
        display_name="Contact",
        display_collection_name="Contacts",
        attributes=tuple(attributes),
    )


ACCOUNT: Final = _account()
CONTACT: Final = _contact()
TABLES: Final[dict[str, Table]] = {ACCOUNT.logical_name: ACCOUNT, CONTACT.logical_name: CONTACT}
TABLES_BY_SET: Final[dict[str, Table]] = {t.entity_set: t for t in TABLES.values()}

# Lookup columns whose target table is stored in a companion EntityName column; the others
# have a single target.
LOOKUP_TYPE_COLUMNS: Final[dict[str, str]] = {
    "ownerid": "owneridtype",
    "parentcustomerid": "parentcustomeridtype",
}
# The navigation property the Web API names for a lookup value, per target table.
NAVIGATION_PROPERTIES: Final[dict[tuple[str, str], str]] = {
    ("parentcustomerid", "account"): "parentcustomerid_account",
    ("parentcustomerid", "contact"): "parentcustomerid_contact",
    ("ownerid", "systemuser"): "ownerid",
    ("ownerid", "team"): "ownerid",
    ("parentaccountid", "account"): "parentaccountid",
    ("primarycontactid", "contact"): "primarycontactid",
    ("transactioncurrencyid", "transactioncurrency"): "transactioncurrencyid",
}
