"""What Dataverse says about itself and the sync user: table definitions and column limits,
who the sync user is and what it may read, change-tracking retention and row totals."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from shared.dataverse.problems import DataverseAuthError, DataverseError
from shared.dataverse.transport import DataverseTransport
from shared.ids import parse_guid

logger = logging.getLogger(__name__)

# What a column's readability and type take; DisplayName (every language's label) only when
# the columns are listed for a person.
ATTRIBUTE_SELECT = (
    "LogicalName,AttributeType,IsValidForRead,IsValidODataAttribute,IsSecured,AttributeOf,"
    "MetadataId,RequiredLevel"
)
TABLE_SELECT = "LogicalName,ChangeTrackingEnabled"


@dataclass(frozen=True)
class LimitCast:
    """The metadata cast of one attribute type that has its limits, and how to ask for them."""

    cast_type: str
    limits: str = ""  # the cast's properties that bound a value
    expand: str = ""  # what to expand for them (a choice's options)

    def params(self) -> dict[str, str]:
        params = {"$select": ",".join(filter(None, ("LogicalName", self.limits)))}
        return params | ({"$expand": self.expand} if self.expand else {})


CHOICE_OPTIONS = "OptionSet($select=Options)"
# By AttributeType.
LIMIT_CASTS: dict[str, LimitCast] = {
    "String": LimitCast("StringAttributeMetadata", "MaxLength"),
    "Memo": LimitCast("MemoAttributeMetadata", "MaxLength"),
    "Integer": LimitCast("IntegerAttributeMetadata", "MinValue,MaxValue"),
    "BigInt": LimitCast("BigIntAttributeMetadata", "MinValue,MaxValue"),
    "Decimal": LimitCast("DecimalAttributeMetadata", "MinValue,MaxValue,Precision"),
    "Double": LimitCast("DoubleAttributeMetadata", "MinValue,MaxValue,Precision"),
    "Money": LimitCast("MoneyAttributeMetadata", "MinValue,MaxValue,Precision"),
    "Picklist": LimitCast(
        "PicklistAttributeMetadata", expand=f"{CHOICE_OPTIONS},GlobalOptionSet($select=Options)"
    ),
    "State": LimitCast("StateAttributeMetadata", expand=CHOICE_OPTIONS),
    "Status": LimitCast("StatusAttributeMetadata", expand=CHOICE_OPTIONS),
}
# Privilege depth the field-security answer gives a column the user may read.
CAN_READ = 4


class DataverseMetadata:
    """The metadata and identity reads of one environment, over its transport."""

    def __init__(self, transport: DataverseTransport):
        self._transport = transport
        self._base = transport.base
        self._user_id: str | None = None
        # Until a server refuses it, every table's definition comes in one request.
        self._combined_definitions = True

    def who_am_i(self) -> dict[str, Any]:
        return self._transport.get_json(self._base + "WhoAmI")

    def user_id(self) -> str:
        """The sync user's systemuserid (WhoAmI), asked once per client."""
        if self._user_id is None:
            self._user_id = parse_guid(str(self.who_am_i()["UserId"]).lower())
        return self._user_id

    def table_definitions(
        self, tables: Sequence[str], *, labels: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Each table's definition: `ChangeTrackingEnabled` and its columns (`Attributes`), by
        logical name; a table the org does not have is left out.

        One request for every table (a `$filter` on LogicalName with `$expand=Attributes`), so
        the check every cycle makes costs one request. A server that refuses that form is
        asked table by table with the two queries the metadata docs show, from then on."""
        select = ATTRIBUTE_SELECT + (",DisplayName" if labels else "")
        names = [logical_name(t) for t in tables]
        if self._combined_definitions:
            found = self._definitions_at_once(names, select)
            if found is not None:
                return found
            self._combined_definitions = False
        return self._definitions_per_table(names, select)

    def column_limits(self, table: str) -> dict[str, dict[str, Any]]:
        """The type-specific properties that bound a column's values (MaxLength, MinValue,
        MaxValue, Precision, the options of a choice), by logical name: one cast per
        attribute type, asked side by side."""
        table_url = f"{self._base}EntityDefinitions(LogicalName='{logical_name(table)}')"

        def cast(kind: str) -> list[dict[str, Any]]:
            cast = LIMIT_CASTS[kind]
            url = f"{table_url}/Attributes/Microsoft.Dynamics.CRM.{cast.cast_type}"
            try:
                body = self._transport.get_json(url, params=cast.params())
            except DataverseAuthError:
                raise
            except DataverseError as error:
                # Limits only hold local edits back: without them the edit checks the type.
                logger.warning("no %s limits: %s", kind, error)
                return []
            return list(body.get("value", []))

        limits: dict[str, dict[str, Any]] = {}
        parallel = self._transport.parallelism
        with ThreadPoolExecutor(parallel, thread_name_prefix="acctsync-metadata") as pool:
            for found in pool.map(cast, LIMIT_CASTS):
                for attribute in found:
                    limits[str(attribute.get("LogicalName", ""))] = attribute
        return limits

    def readable_secured_columns(self, user_id: str) -> set[str]:
        """MetadataIds of the secured columns this user may read through field security."""
        url = _user_function(self._base, user_id, "RetrievePrincipalAttributePrivileges")
        body = self._transport.get_json(url)
        return {
            str(p["AttributeId"]).lower()
            for p in body.get("AttributePrivileges", [])
            if int(p.get("CanRead", 0)) == CAN_READ
        }

    def user_privileges(self, user_id: str) -> list[dict[str, Any]]:
        """The sync user's privileges through its security roles (RetrieveUserPrivileges):
        `{"PrivilegeName", "Depth", ...}` each."""
        body = self._transport.get_json(
            _user_function(self._base, user_id, "RetrieveUserPrivileges")
        )
        return list(body.get("RolePrivileges", []))

    def change_tracking_retention_days(self) -> int | None:
        """How many days the org keeps change tracking (`expirechangetrackingindays`): a delta
        link older than that is refused and the table is read again in full."""
        body = self._transport.get_json(
            self._base + "organizations", params={"$select": "expirechangetrackingindays"}
        )
        rows = body.get("value") or [{}]
        days = rows[0].get("expirechangetrackingindays")
        return int(days) if days is not None else None

    def total_records(self, tables: list[str]) -> dict[str, int]:
        """Rows per table (logical names), from RetrieveTotalRecordCount: one request, a count
        Dataverse keeps up to a day old, enough to show how far a full load is."""
        names = orjson.dumps([logical_name(t) for t in tables]).decode()
        body = self._transport.get_json(
            self._base + "RetrieveTotalRecordCount(EntityNames=@p1)", params={"@p1": names}
        )
        counts = body.get("EntityRecordCountCollection") or {}
        return {
            str(k): int(v)
            for k, v in zip(counts.get("Keys", []), counts.get("Values", []), strict=False)
        }

    def _definitions_at_once(
        self, names: list[str], select: str
    ) -> dict[str, dict[str, Any]] | None:
        """Every table's definition in one request; None when the server refuses that form."""
        try:
            body = self._transport.get_json(
                self._base + "EntityDefinitions",
                params={
                    "$select": TABLE_SELECT,
                    "$filter": " or ".join(f"LogicalName eq '{n}'" for n in names),
                    "$expand": f"Attributes($select={select})",
                },
            )
        except DataverseAuthError:
            raise
        except DataverseError as error:
            if error.status not in (400, 404, 501):
                raise
            logger.info("EntityDefinitions with $expand refused (%s); asking per table", error)
            return None
        found = {
            str(d["LogicalName"]): d for d in body.get("value", []) if d.get("LogicalName") in names
        }
        if all("Attributes" in d for d in found.values()):
            return found
        # A server that ignores $expand: ask the way it surely answers.
        logger.info("EntityDefinitions ignored $expand=Attributes; asking per table")
        return None

    def _definitions_per_table(self, names: list[str], select: str) -> dict[str, dict[str, Any]]:
        definitions = {}
        for name in names:
            entity = f"{self._base}EntityDefinitions(LogicalName='{name}')"
            try:
                definition = self._transport.get_json(entity, params={"$select": TABLE_SELECT})
            except DataverseError as error:
                if error.status == 404:
                    continue
                raise
            attributes = self._transport.get_json(
                entity + "/Attributes", params={"$select": select}
            )
            definitions[name] = {**definition, "Attributes": attributes.get("value", [])}
        return definitions


def _user_function(base: str, user_id: str, function: str) -> str:
    """The URL of a function bound to a system user (its privileges)."""
    return f"{base}systemusers({parse_guid(user_id)})/Microsoft.Dynamics.CRM.{function}()"


def logical_name(name: str) -> str:
    """`name` quoted for a metadata URL, once it is sure to be a logical name."""
    if not name.isidentifier() or not name.islower():
        raise ValueError(
            f"not a Dataverse logical name: {name!r}; use the table's lower-case logical name"
        )
    return quote(name)
