"""EntityDefinitions and their Attributes, shaped like the Dataverse metadata Web API.

What the simulator answers, as "Query table definitions using the Web API" documents it:

- `EntityDefinitions` and `EntityDefinitions(LogicalName='x')` with `$select`, `$filter` and
  `$expand=Attributes($select=...;$filter=...)`;
- `.../Attributes` and `.../Attributes(LogicalName='x')` with the properties every attribute
  shares (AttributeMetadata);
- casts, `.../Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata`, for the properties of
  one type (MaxLength, MinValue, Precision, ...) and, for choice columns, `$expand=OptionSet`.

Without `$select` an attribute carries every property of its own type, as the service
serialises it; with `$select` only properties of the type in the URL may be named (the base
type unless the URL casts), and anything else is the usual "Could not find a property" 400.
Metadata is never paged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from acctsync.sim.filters import Getter, compile_filter
from acctsync.sim.odata import ODataError, QueryOptions, parse_expand, property_not_found
from acctsync.sim.schema import STATUS_CODES, TYPE_NAMES, Attribute, Table, stable_id

LANGUAGE: Final = 1033
NAMESPACE: Final = "Microsoft.Dynamics.CRM."
ATTRIBUTE_TYPE: Final = "Microsoft.Dynamics.CRM.AttributeMetadata"
ENTITY_TYPE: Final = "Microsoft.Dynamics.CRM.EntityMetadata"
# Present on every metadata object whatever $select says: its key and its type.
_ALWAYS: Final = ("@odata.type", "MetadataId")

# The properties each derived type adds to AttributeMetadata (reachable with $select only
# through a cast). Types of the real service that no column here has are listed too, so a cast
# to them answers an empty list rather than 404.
TYPED_PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "AttributeMetadata": (),
    "StringAttributeMetadata": ("MaxLength", "Format", "FormatName"),
    "MemoAttributeMetadata": ("MaxLength", "Format"),
    "IntegerAttributeMetadata": ("MinValue", "MaxValue", "Format"),
    "BigIntAttributeMetadata": ("MinValue", "MaxValue"),
    "DecimalAttributeMetadata": ("MinValue", "MaxValue", "Precision"),
    "DoubleAttributeMetadata": ("MinValue", "MaxValue", "Precision"),
    "MoneyAttributeMetadata": ("MinValue", "MaxValue", "Precision", "PrecisionSource"),
    "BooleanAttributeMetadata": ("DefaultValue",),
    "PicklistAttributeMetadata": (),
    "StateAttributeMetadata": (),
    "StatusAttributeMetadata": (),
    "MultiSelectPicklistAttributeMetadata": (),
    "LookupAttributeMetadata": ("Targets",),
    "DateTimeAttributeMetadata": ("Format", "DateTimeBehavior"),
    "UniqueIdentifierAttributeMetadata": (),
    "EntityNameAttributeMetadata": (),
    "ImageAttributeMetadata": (),
    "FileAttributeMetadata": (),
    "ManagedPropertyAttributeMetadata": (),
}
# Types with the OptionSet and GlobalOptionSet navigation properties (EnumAttributeMetadata's
# and BooleanAttributeMetadata's). The docs say a cast to EnumAttributeMetadata itself fails.
OPTION_SET_TYPES: Final = frozenset(
    {
        "PicklistAttributeMetadata",
        "StateAttributeMetadata",
        "StatusAttributeMetadata",
        "BooleanAttributeMetadata",
        "MultiSelectPicklistAttributeMetadata",
    }
)
_OPTION_SET_NAVIGATION: Final = ("OptionSet", "GlobalOptionSet")
# Collection-valued navigation properties of EntityMetadata the simulator does not serve.
_ENTITY_NAVIGATION: Final = frozenset(
    {"Keys", "ManyToManyRelationships", "ManyToOneRelationships", "OneToManyRelationships"}
)


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


def odata_type(attribute: Attribute) -> str:
    """The unqualified entity type of an attribute, e.g. StringAttributeMetadata."""
    return TYPE_NAMES[attribute.attribute_type][1]


def attribute_metadata(table: Table, attribute: Attribute, secured: bool) -> dict[str, object]:
    """The properties every attribute shares (AttributeMetadata)."""
    type_name, type_of_entry = TYPE_NAMES[attribute.attribute_type]
    derived = attribute.attribute_of is not None
    writable = not derived and not attribute.read_only
    primary_name = attribute.logical_name == table.primary_name
    return {
        "@odata.type": f"#{NAMESPACE}{type_of_entry}",
        "MetadataId": attribute.metadata_id,
        "LogicalName": attribute.logical_name,
        "SchemaName": attribute.schema_name,
        "EntityLogicalName": table.logical_name,
        "AttributeType": attribute.attribute_type,
        "AttributeTypeName": {"Value": type_name},
        "AttributeOf": attribute.attribute_of,
        "DisplayName": label(attribute.display_name, attribute.metadata_id),
        "IsPrimaryId": attribute.logical_name == table.primary_id,
        "IsPrimaryName": primary_name,
        "IsCustomAttribute": attribute.custom,
        "IsValidForRead": attribute.valid_for_read,
        "IsValidForCreate": writable,
        "IsValidForUpdate": writable,
        "IsValidODataAttribute": attribute.selectable,
        "IsSecured": secured,
        "CanBeSecuredForRead": _managed(not derived, "canmodifyfieldlevelsecuritysettings"),
        "RequiredLevel": _managed(primary_name, "canmodifyrequirementlevelsettings")
        | {"Value": "ApplicationRequired" if primary_name else "None"},
    }


_BASE_ATTRIBUTE_PROPERTIES: Final = frozenset(
    attribute_metadata(
        Table("x", "X", "xs", "xid", "name", 0, "X", "Xs", ()),
        Attribute("x", "name", "String", "Name", None),
        secured=False,
    )
)


def typed_properties(attribute: Attribute) -> dict[str, object]:
    """The properties the attribute's own type adds, with the values the reference gives."""
    kind = attribute.attribute_type
    if kind == "String":
        text_format = attribute.format_name or "Text"
        return {
            "MaxLength": attribute.max_length,
            "Format": text_format,
            "FormatName": {"Value": text_format},
        }
    if kind == "Memo":
        return {"MaxLength": attribute.max_length, "Format": "TextArea"}
    if kind in ("Integer", "BigInt"):
        limits: dict[str, object] = {
            "MinValue": attribute.min_value,
            "MaxValue": attribute.max_value,
        }
        return limits | ({"Format": "None"} if kind == "Integer" else {})
    if kind in ("Decimal", "Double", "Money"):
        numbers: dict[str, object] = {
            "MinValue": attribute.min_value,
            "MaxValue": attribute.max_value,
            "Precision": attribute.precision,
        }
        # PrecisionSource 2: the precision of the record's currency, as the reference says.
        return numbers | ({"PrecisionSource": 2} if kind == "Money" else {})
    if kind == "Boolean":
        return {"DefaultValue": attribute.default_value}
    if attribute.is_lookup:
        return {"Targets": list(attribute.targets)}
    if kind == "DateTime":
        return {"Format": "DateAndTime", "DateTimeBehavior": {"Value": "UserLocal"}}
    return {}


def _option(attribute: Attribute, value: int, text: str) -> dict[str, object]:
    return {
        "Value": value,
        "Label": label(text, f"{attribute.metadata_id}/{value}"),
        "Description": label(None, ""),
        "Color": None,
        "IsManaged": True,
        "MetadataId": None,
        "HasChanged": None,
    }


def option_set(table: Table, attribute: Attribute) -> dict[str, object]:
    """OptionSetMetadata (or BooleanOptionSetMetadata) of a choice or Two Options column."""
    owner = stable_id("optionset", table.logical_name, attribute.logical_name)
    kind = attribute.attribute_type
    result: dict[str, object] = {
        "MetadataId": owner,
        "HasChanged": None,
        "Name": f"{table.logical_name}_{attribute.logical_name}",
        "OptionSetType": kind,
        "IsGlobal": False,
        "IsCustomOptionSet": attribute.custom,
        "IsManaged": not attribute.custom,
        "IntroducedVersion": None,
        "DisplayName": label(attribute.display_name, owner),
        "Description": label(None, owner),
        "IsCustomizable": {
            "Value": True,
            "CanBeChanged": False,
            "ManagedPropertyLogicalName": "iscustomizable",
        },
    }
    if kind == "Boolean":
        result["TrueOption"] = _option(attribute, 1, attribute.options[1])
        result["FalseOption"] = _option(attribute, 0, attribute.options[0])
        return result
    options = []
    for value, text in attribute.options.items():
        option = _option(attribute, value, text)
        if kind == "State":
            # StateOptionMetadata: the status a row gets when it enters the state.
            default = next(s for s, (_, state) in STATUS_CODES.items() if state == value)
            option |= {"DefaultStatus": default, "InvariantName": text}
        elif kind == "Status":
            option |= {"State": STATUS_CODES[value][1], "TransitionData": None}
        options.append(option)
    result["Options"] = options
    return result


def entity_metadata(table: Table, *, change_tracking: bool) -> dict[str, object]:
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
        "ChangeTrackingEnabled": change_tracking,
        "CanChangeTrackingBeEnabled": _managed(True, "canchangetrackingbeenabled"),
        "DisplayName": label(table.display_name, table.metadata_id),
        "DisplayCollectionName": label(table.display_collection_name, table.metadata_id + "s"),
    }


_ENTITY_PROPERTIES: Final = frozenset(
    entity_metadata(Table("x", "X", "xs", "xid", "name", 0, "X", "Xs", ()), change_tracking=True)
)


def project(
    item: dict[str, object], select: list[str] | None, allowed: Iterable[str], type_name: str
) -> dict[str, object]:
    """Apply $select to one metadata object; `allowed` are the properties of the URL's type."""
    if select is None:
        return item
    names = set(allowed)
    for name in select:
        if name not in names:
            raise property_not_found(name, type_name)
    return {k: v for k, v in item.items() if k in _ALWAYS or k in select}


def filter_items(
    items: list[dict[str, object]], text: str | None, allowed: Iterable[str], type_name: str
) -> list[dict[str, object]]:
    """Apply a metadata $filter; paths may reach into complex values (AttributeTypeName/Value)."""
    if text is None:
        return items
    names = set(allowed)

    def resolve(path: str) -> Getter[dict[str, object]]:
        parts = path.split("/")
        if parts[0] not in names:
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


def _paren(names: list[str] | None) -> str:
    return f"({','.join(names)})" if names else ""


@dataclass(frozen=True)
class TableView:
    """One table as its metadata stands now: the columns that exist, who secured what."""

    table: Table
    attributes: tuple[Attribute, ...]
    change_tracking: bool
    is_secured: Callable[[str], bool]

    def entity(self) -> dict[str, object]:
        return entity_metadata(self.table, change_tracking=self.change_tracking)

    def attribute(self, attribute: Attribute, *, typed: bool) -> dict[str, object]:
        entry = attribute_metadata(self.table, attribute, self.is_secured(attribute.logical_name))
        return entry | typed_properties(attribute) if typed else entry

    def find(self, logical_name: str | None, metadata_id: str | None) -> Attribute:
        for attribute in self.attributes:
            if attribute.logical_name == logical_name or attribute.metadata_id == metadata_id:
                return attribute
        raise ODataError(
            404,
            "0x80040217",
            f"Could not find attribute with name '{logical_name or metadata_id}' on entity "
            f"'{self.table.logical_name}'.",
        )


class MetadataQuery:
    """Answers metadata requests for one request's options, against `api_url`."""

    def __init__(self, api_url: str, options: QueryOptions) -> None:
        self.api_url = api_url
        self.options = options

    # ---- EntityDefinitions ---------------------------------------------------------------

    def _attributes_expand(self) -> QueryOptions | None:
        """The nested options of $expand=Attributes(...), None without $expand."""
        raw = self.options.get("$expand")
        if raw is None:
            return None
        nested: QueryOptions | None = None
        for expand in parse_expand(raw):
            if expand.name in _ENTITY_NAVIGATION:
                raise ODataError(
                    501, "", f"The simulator does not implement $expand={expand.name}."
                )
            if expand.name != "Attributes" or nested is not None:
                raise property_not_found(expand.name, ENTITY_TYPE)
            nested = expand.options
        return nested

    def _entity_item(self, view: TableView, nested: QueryOptions | None) -> dict[str, object]:
        item = project(view.entity(), self.options.select, _ENTITY_PROPERTIES, ENTITY_TYPE)
        if nested is not None:
            attributes = [view.attribute(a, typed=nested.select is None) for a in view.attributes]
            attributes = filter_items(
                attributes, nested.get("$filter"), _BASE_ATTRIBUTE_PROPERTIES, ATTRIBUTE_TYPE
            )
            item["Attributes"] = [
                project(a, nested.select, _BASE_ATTRIBUTE_PROPERTIES, ATTRIBUTE_TYPE)
                for a in attributes
            ]
        return item

    def _entity_context(self, nested: QueryOptions | None) -> str:
        names = list(self.options.select or [])
        if nested is not None:
            # OData 4.0 writes an expanded property into the select list of the context URL.
            names.append(f"Attributes({','.join(nested.select or [])})")
        return f"{self.api_url}$metadata#EntityDefinitions{_paren(names)}"

    def definitions(self, views: list[TableView]) -> dict[str, object]:
        nested = self._attributes_expand()
        wanted = filter_items(
            [v.entity() for v in views],
            self.options.get("$filter"),
            _ENTITY_PROPERTIES,
            ENTITY_TYPE,
        )
        ids = {item["MetadataId"] for item in wanted}
        return {
            "@odata.context": self._entity_context(nested),
            "value": [self._entity_item(v, nested) for v in views if v.table.metadata_id in ids],
        }

    def definition(self, view: TableView) -> dict[str, object]:
        nested = self._attributes_expand()
        return {
            "@odata.context": f"{self._entity_context(nested)}/$entity",
            **self._entity_item(view, nested),
        }

    # ---- Attributes ----------------------------------------------------------------------

    def _base(self, view: TableView) -> str:
        return f"{self.api_url}$metadata#EntityDefinitions('{view.table.metadata_id}')"

    @staticmethod
    def _cast(cast: str | None) -> str | None:
        """The type a cast segment names, checked; None for no cast."""
        if cast is None:
            return None
        name = cast.removeprefix(NAMESPACE)
        if not cast.startswith(NAMESPACE) or name not in TYPED_PROPERTIES:
            raise ODataError(404, "0x80060888", f"Resource not found for the segment '{cast}'.")
        return name

    def _option_sets(self, cast: str | None) -> list[tuple[str, QueryOptions]]:
        """The option-set navigation properties $expand asks for (only after a cast)."""
        raw = self.options.get("$expand")
        if raw is None:
            return []
        type_name = f"{NAMESPACE}{cast}" if cast else ATTRIBUTE_TYPE
        wanted = []
        for expand in parse_expand(raw):
            if cast not in OPTION_SET_TYPES or expand.name not in _OPTION_SET_NAVIGATION:
                raise property_not_found(expand.name, type_name)
            wanted.append((expand.name, expand.options))
        return wanted

    def _attribute_item(
        self,
        view: TableView,
        attribute: Attribute,
        cast: str | None,
        expands: list[tuple[str, QueryOptions]],
        entity_context: str | None = None,
    ) -> dict[str, object]:
        select = self.options.select
        allowed = _BASE_ATTRIBUTE_PROPERTIES | set(TYPED_PROPERTIES[cast] if cast else ())
        type_name = f"{NAMESPACE}{cast}" if cast else ATTRIBUTE_TYPE
        item = project(view.attribute(attribute, typed=True), select, allowed, type_name)
        for name, nested in expands:
            if entity_context is not None:
                item[f"{name}@odata.context"] = f"{entity_context}/{name}/$entity"
            item[name] = self._option_set_value(view, attribute, name, nested.select)
        return item

    @staticmethod
    def _option_set_value(
        view: TableView, attribute: Attribute, name: str, select: list[str] | None
    ) -> dict[str, object] | None:
        if name == "GlobalOptionSet":
            # Every choice column here has a local option set, so there is no global one.
            return None
        value = option_set(view.table, attribute)
        return project(value, select, value, f"{NAMESPACE}OptionSetMetadata")

    def _select_list(self, expands: list[tuple[str, QueryOptions]]) -> list[str]:
        return list(self.options.select or []) + [name for name, _ in expands]

    def attributes(self, view: TableView, cast_segment: str | None) -> dict[str, object]:
        cast = self._cast(cast_segment)
        expands = self._option_sets(cast)
        # A cast keeps the attributes of that type (and of types derived from it).
        attributes = [
            a
            for a in view.attributes
            if cast is None or cast == "AttributeMetadata" or odata_type(a) == cast
        ]
        allowed = _BASE_ATTRIBUTE_PROPERTIES | set(TYPED_PROPERTIES[cast] if cast else ())
        type_name = f"{NAMESPACE}{cast}" if cast else ATTRIBUTE_TYPE
        entries = [view.attribute(a, typed=True) for a in attributes]
        kept = {
            e["MetadataId"]
            for e in filter_items(entries, self.options.get("$filter"), allowed, type_name)
        }
        path = f"/Attributes/{NAMESPACE}{cast}" if cast else "/Attributes"
        return {
            "@odata.context": f"{self._base(view)}{path}{_paren(self._select_list(expands))}",
            "value": [
                self._attribute_item(view, a, cast, expands)
                for a in attributes
                if a.metadata_id in kept
            ],
        }

    def attribute(
        self,
        view: TableView,
        attribute: Attribute,
        cast_segment: str | None,
        navigation: str | None,
    ) -> dict[str, object]:
        cast = self._cast(cast_segment)
        if cast is not None and cast != "AttributeMetadata" and odata_type(attribute) != cast:
            # The docs are silent on a cast that does not fit the attribute; a missing
            # resource is what OData says about it.
            raise ODataError(
                404,
                "0x80040217",
                f"The attribute '{attribute.logical_name}' of entity "
                f"'{view.table.logical_name}' is not a {NAMESPACE}{cast}.",
            )
        path = f"{self._base(view)}/Attributes({attribute.metadata_id})"
        if cast is not None:
            path += f"/{NAMESPACE}{cast}"
        if navigation is not None:
            if cast not in OPTION_SET_TYPES:
                raise property_not_found(navigation, f"{NAMESPACE}{cast or 'AttributeMetadata'}")
            value = self._option_set_value(view, attribute, navigation, self.options.select)
            if value is None:
                raise ODataError(404, "0x80040217", f"{navigation} is null for this attribute.")
            context = f"{path}/{navigation}{_paren(self.options.select)}/$entity"
            return {"@odata.context": context, **value}
        expands = self._option_sets(cast)
        base = f"{self._base(view)}/Attributes"
        if cast is not None:
            base += f"/{NAMESPACE}{cast}"
        return {
            "@odata.context": f"{base}{_paren(self._select_list(expands))}/$entity",
            **self._attribute_item(view, attribute, cast, expands, entity_context=path),
        }
