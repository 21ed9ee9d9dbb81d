"""EntityDefinitions and their Attributes, shaped like the Dataverse metadata Web API."""

from __future__ import annotations

from typing import Final

from acctsync.sim.filters import Getter, compile_filter
from acctsync.sim.odata import ODataError, property_not_found
from acctsync.sim.schema import TYPE_NAMES, Attribute, Table, stable_id
from acctsync.sim.security import FieldSecurity

LANGUAGE: Final = 1033
ATTRIBUTE_TYPE: Final = "Microsoft.Dynamics.CRM.AttributeMetadata"
ENTITY_TYPE: Final = "Microsoft.Dynamics.CRM.EntityMetadata"
# Present on every metadata object whatever $select says: its key and its type.
_ALWAYS: Final = ("@odata.type", "MetadataId")


def label(text: str | None, owner: str) -> dict[str, object]:
    """The Label complex type: localized labels plus the one for the caller's language."""
    if text is None:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    localized = {
        "Label": text,
        "LanguageCode": LANGUAGE,
        "IsManaged": True,
        "MetadataId": stable_id("label", owner),
        "HasChanged": None,
    }
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": dict(localized)}


def _managed(value: bool, name: str) -> dict[str, object]:
    return {"Value": value, "CanBeChanged": True, "ManagedPropertyLogicalName": name}


def attribute_metadata(
    table: Table, attribute: Attribute, security: FieldSecurity
) -> dict[str, object]:
    type_name, odata_type = TYPE_NAMES[attribute.attribute_type]
    derived = attribute.attribute_of is not None
    entry: dict[str, object] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{odata_type}",
        "MetadataId": attribute.metadata_id,
        "LogicalName": attribute.logical_name,
        "SchemaName": attribute.schema_name,
        "EntityLogicalName": table.logical_name,
        "AttributeType": attribute.attribute_type,
        "AttributeTypeName": {"Value": type_name},
        "AttributeOf": attribute.attribute_of,
        "DisplayName": label(attribute.display_name, attribute.metadata_id),
        "IsPrimaryId": attribute.logical_name == table.primary_id,
        "IsPrimaryName": attribute.logical_name == table.primary_name,
        "IsCustomAttribute": attribute.custom,
        "IsValidForRead": attribute.valid_for_read,
        "IsValidForCreate": not derived and attribute.logical_name != "versionnumber",
        "IsValidForUpdate": not derived and attribute.logical_name != "versionnumber",
        "IsValidODataAttribute": attribute.selectable,
        "IsSecured": security.is_secured(table.logical_name, attribute.logical_name),
        "CanBeSecuredForRead": _managed(not derived, "canmodifyfieldlevelsecuritysettings"),
        "RequiredLevel": _managed(
            attribute.logical_name == table.primary_name, "canmodifyrequirementlevelsettings"
        )
        | {
            "Value": "ApplicationRequired"
            if attribute.logical_name == table.primary_name
            else "None"
        },
    }
    if attribute.max_length is not None:
        entry["MaxLength"] = attribute.max_length
    if attribute.is_lookup:
        entry["Targets"] = list(attribute.targets)
    return entry


def entity_metadata(table: Table) -> dict[str, object]:
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.EntityMetadata",
        "MetadataId": table.metadata_id,
        "LogicalName": table.logical_name,
        "SchemaName": table.schema_name,
        "EntitySetName": table.entity_set,
        "LogicalCollectionName": table.entity_set,
        "CollectionSchemaName": f"{table.schema_name}s",
        "PrimaryIdAttribute": table.primary_id,
        "PrimaryNameAttribute": table.primary_name,
        "ObjectTypeCode": table.object_type_code,
        "OwnershipType": "UserOwned",
        "IsCustomEntity": False,
        "ChangeTrackingEnabled": True,
        "CanChangeTrackingBeEnabled": _managed(True, "canchangetrackingbeenabled"),
        "DisplayName": label(table.display_name, table.metadata_id),
        "DisplayCollectionName": label(table.display_collection_name, table.metadata_id + "s"),
    }


def project(item: dict[str, object], select: list[str] | None, type_name: str) -> dict[str, object]:
    """Apply $select to one metadata object."""
    if select is None:
        return item
    for name in select:
        if name not in item:
            raise property_not_found(name, type_name)
    return {k: v for k, v in item.items() if k in _ALWAYS or k in select}


def filter_items(
    items: list[dict[str, object]], text: str | None, type_name: str
) -> list[dict[str, object]]:
    """Apply a metadata $filter; paths may reach into complex values (AttributeTypeName/Value)."""
    if text is None:
        return items
    sample = items[0] if items else {}

    def resolve(path: str) -> Getter[dict[str, object]]:
        parts = path.split("/")
        if parts[0] not in sample:
            raise property_not_found(parts[0], type_name)
        if parts[0] in ("DisplayName", "DisplayCollectionName"):
            raise ODataError(
                400,
                "0x80060888",
                "Filtering on Label properties is not supported.",
            )

        def get(item: dict[str, object]) -> object:
            value: object = item
            for part in parts:
                value = value.get(part) if isinstance(value, dict) else None
            return value

        return get

    predicate = compile_filter(text, resolve)
    return [item for item in items if predicate(item)]
