"""Readers of one table's pages: what to select, and each row as the changes a batch carries.

A row acctsync cannot mirror (an id that is not a GUID, a version that is not a number) becomes
a sync error on that row; the rest of the page goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared import telemetry
from shared.dataverse.client import FORMATTED_VALUE, ChangePage
from shared.dataverse.columns import (
    ACCOUNT_ID,
    CONTACT_ID,
    PARENT_CUSTOMER,
    PARENT_TYPE,
    account_select,
    contact_select,
)
from shared.ids import InvalidId, parse_guid, parse_version
from shared.mapping import ColumnType, label_of, web_api_property
from shared.mirror.records import bucket
from shared.mirror.search import SearchKey, SearchKind, value_terms
from shared.state.field_selections import Table
from shared.state.filtered_accounts import SyncFilter
from shared.state.schedule import LoadMode
from shared.state.sync_errors import ErrorCode, SyncErrors
from shared.sync.batches import (
    AccountChange,
    Batch,
    ContactChange,
    Kind,
    account_fragment,
    contact_fragment,
    member_fragment,
    search_fragment,
)
from shared.sync.change_rows import contact_storable

if TYPE_CHECKING:
    from shared.sync.column_access import ColumnAccess


@dataclass(frozen=True)
class Fragment:
    """One change, encoded, with the mirror partition it belongs to."""

    kind: Kind
    partition: str
    record_id: str
    text: str


@dataclass
class RowErrors:
    """Where a reader records the rows it cannot mirror."""

    errors: SyncErrors
    cycle_id: str
    count: int = 0

    def bad_row(self, entity: str, value: Any, message: str) -> None:
        self.count += 1
        self.errors.record(
            entity=entity,
            record_id=repr(value)[:100],
            operation="read",
            message=f"Dataverse sent a row acctsync cannot mirror: {message}",
            cycle_id=self.cycle_id,
            code=ErrorCode.BAD_ROW,
        )

    def guid(self, entity: str, value: Any) -> str | None:
        """Ids from Dataverse become table keys: anything but a GUID is a sync error."""
        try:
            return parse_guid(value)
        except InvalidId as error:
            self.bad_row(entity, value, str(error))
            return None


Change = TypeVar("Change", AccountChange, ContactChange)


def page_changes(
    page: ChangePage,
    errors: RowErrors,
    record: tuple[str, str],
    change_of: Callable[[dict[str, Any]], Change],
    deleted: Callable[[str], Change],
) -> Iterator[Change]:
    """A page's changes, then its deletions; a row that cannot be mirrored is a sync error
    (`record`: the entity's name and its id column, to say which) and is left out."""
    entity, id_column = record
    for row in page.rows:
        try:
            change = change_of(row)
        except ValueError as error:  # InvalidId and InvalidVersion included
            errors.bad_row(entity, row.get(id_column), str(error))
            continue
        yield change
    for deleted_id in page.deleted_ids:
        if record_id := errors.guid(entity, deleted_id):
            yield deleted(record_id)


class TableReader(Protocol):
    entity_set: str
    table: Table
    # The columns the change-tracking chain selects, in order (part of its delta link).
    select: list[str]
    # Columns loaded for every row without activities (newly selected ones); a chain that
    # does not carry all of them cannot go on, the table is read again in full.
    backfill: tuple[str, ...]
    changed: int  # changes (deletions included) read so far

    def header(self, cycle_id: str, mode: LoadMode, generation: int) -> Batch:
        """What every batch of a chain read in `mode` says about itself."""
        ...

    def fragments(self, page: ChangePage) -> Iterator[Fragment]:
        """The page's changes (deletions included), encoded."""
        ...


def account_change(row: dict[str, Any], columns: dict[str, ColumnType]) -> AccountChange:
    """An account row as the change a batch carries; ValueError for a row it cannot carry."""
    properties = {c: web_api_property(c, t) for c, t in columns.items()}
    return AccountChange(
        id=parse_guid(row.get(ACCOUNT_ID)),
        version=parse_version(row.get("versionnumber")),
        modified_on=row.get("modifiedon"),
        values={c: row.get(p) for c, p in properties.items()},
        labels=row_labels(row, properties),
    )


def row_labels(row: dict[str, Any], properties: dict[str, str]) -> dict[str, str]:
    """The labels of a row's values (column -> its Web API property), from the formatted-value
    annotations Dataverse sends beside them when asked."""
    return {
        column: label
        for column, prop in properties.items()
        if (label := label_of(row.get(prop), row.get(f"{prop}@{FORMATTED_VALUE}")))
    }


@dataclass
class _ChainReader:
    """What a table's reader keeps of its chain: which columns it may read, where a bad row is
    recorded, and the chain's `$select` and backfill, fixed when the reader is made."""

    access: ColumnAccess
    errors: RowErrors
    changed: int = field(default=0, init=False)
    select: list[str] = field(init=False)
    backfill: tuple[str, ...] = field(init=False)

    def _chain(self, select: list[str]) -> None:
        self.select = select
        self.backfill = tuple(c for c in self.access.backfill if c in self.access.select)


@dataclass
class AccountReader(_ChainReader):
    """Accounts with the selected columns. Unreadable columns stay out of the batches, so
    their mirrored values are kept rather than blanked by the nulls Dynamics sends for them.
    With the sync filter on, its column is read too, and an account it keeps out travels as a
    change without values."""

    sync_filter: SyncFilter | None = None
    # A first load sends the accounts' search-index entries apart (grouped by partition).
    search_apart: bool = False
    entity_set: str = "accounts"
    table: Table = Table.ACCOUNT
    _columns: dict[str, ColumnType] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        select = account_select(self.access.select)
        if self.sync_filter is not None and self.sync_filter.active:
            # Part of the chain's $select: the filter coming or going reads the table again.
            select += [c for c in [self.sync_filter.column] if c not in select]
        self._chain(select)

    @property
    def columns(self) -> dict[str, ColumnType]:
        """The columns the batches carry (the grants of secured ones asked on first use)."""
        if self._columns is None:
            self._columns = self.access.readable()
        return self._columns

    def header(self, cycle_id: str, mode: LoadMode, generation: int) -> Batch:
        self.search_apart = mode is LoadMode.INITIAL
        return Batch(
            cycle_id,
            "",
            mode,
            self.columns,
            traceparent=telemetry.current_traceparent(),
            backfill=[c for c in self.backfill if c in self.columns],
            search_apart=self.search_apart,
            generation=generation,
        )

    def fragments(self, page: ChangePage) -> Iterator[Fragment]:
        for change in self.changes(page):
            yield Fragment("accounts", bucket(change.id), change.id, account_fragment(change))
            if self.search_apart and not (change.deleted or change.filtered):
                yield from search_fragments(SearchKind.ACCOUNT, change.id, change.values)

    def changes(self, page: ChangePage) -> Iterator[AccountChange]:
        """The page's changes (deletions included), as the apply step takes them."""
        columns = self.columns

        def change_of(row: dict[str, Any]) -> AccountChange:
            change = account_change(row, columns)
            if self.sync_filter is not None and self.sync_filter.excludes(row):
                return replace(change, values={}, labels={}, filtered=True)
            return change

        gone = _deleted_account
        for change in page_changes(page, self.errors, ("account", ACCOUNT_ID), change_of, gone):
            self.changed += 1
            yield change


@dataclass
class ContactReader(_ChainReader):
    """Contacts with their parent customer. A first load also sends each contact's account
    membership and search-index entries, grouped by their own partitions (`members_apart`,
    `search_apart`). A contact column the sync user cannot read is left out of each change, so
    its values are kept."""

    members_apart: bool = False
    entity_set: str = "contacts"
    table: Table = Table.CONTACT
    _columns: list[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._chain(contact_select(self.access.select))

    def header(self, cycle_id: str, mode: LoadMode, generation: int) -> Batch:
        self.members_apart = mode is LoadMode.INITIAL
        self._columns = list(self.access.readable())
        return Batch(
            cycle_id,
            "",
            mode,
            {},
            traceparent=telemetry.current_traceparent(),
            members_apart=self.members_apart,
            search_apart=self.members_apart,
            generation=generation,
        )

    def fragments(self, page: ChangePage) -> Iterator[Fragment]:
        for change in self.changes(page):
            yield Fragment("contacts", bucket(change.id), change.id, contact_fragment(change))
            # Only for a row the apply step will be able to write: its batch records the
            # sync error of one it cannot, and writes nothing of it.
            if self.members_apart and not change.deleted and contact_storable(change):
                if pair := _membership(change):
                    yield Fragment("members", bucket(pair[0]), change.id, member_fragment(*pair))
                yield from search_fragments(SearchKind.CONTACT, change.id, change.values)

    def changes(self, page: ChangePage) -> Iterator[ContactChange]:
        """The page's changes (deletions included), as the apply step takes them."""
        columns = self._columns if self._columns is not None else list(self.access.readable())

        def change_of(row: dict[str, Any]) -> ContactChange:
            parent = row.get(PARENT_CUSTOMER)
            return ContactChange(
                id=parse_guid(row.get(CONTACT_ID)),
                version=parse_version(row.get("versionnumber")),
                parent_id=None if parent is None else parse_guid(parent),
                parent_type=row.get(PARENT_TYPE),
                modified_on=row.get("modifiedon"),
                values={c: row.get(c) for c in columns},
                labels=row_labels(row, {c: c for c in columns}),
            )

        gone = _deleted_contact
        for change in page_changes(page, self.errors, ("contact", CONTACT_ID), change_of, gone):
            self.changed += 1
            yield change


def _deleted_account(account_id: str) -> AccountChange:
    return AccountChange(id=account_id, deleted=True)


def _deleted_contact(contact_id: str) -> ContactChange:
    return ContactChange(id=contact_id, deleted=True)


def _membership(contact: ContactChange) -> tuple[str, str] | None:
    """The (account, contact) membership a first load sends apart: a contact whose parent is
    known to be an account."""
    if contact.parent_type != "account" or not contact.parent_id:
        return None
    return contact.parent_id, contact.id


def search_fragments(
    kind: SearchKind, record_id: str, values: dict[str, Any]
) -> Iterator[Fragment]:
    """A first load's search-index entries of one record, each under its index partition."""
    for term in value_terms(kind, values):
        key = SearchKey.of(kind, term, record_id)
        yield Fragment("search", key.partition, record_id, search_fragment(kind, term, record_id))
