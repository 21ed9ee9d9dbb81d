"""In-memory rows with Dataverse-style row versions and a version-ordered change log.

Every write takes the next value of one organisation-wide version counter, as SQL Server
rowversion does for a real org. Two append-only logs make paging cheap whatever the size:

- the change log (version, id) answers "what changed in (since, until]" with a binary search,
  so a delta request costs O(log n + changes), never O(rows x history);
- the creation log (created version, id) gives every row a stable position, so full loads page
  with a cursor instead of sorting.

Superseded log entries are skipped when read and dropped when a log grows to twice the
number of rows it describes.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from acctsync.sim.schema import TABLES, Table

Value = str | int | float | bool | None

# (table, lookup column) pairs whose deletion of the target removes the referencing row: the
# contact_customer_accounts and contact_customer_contacts relationships are parental.
_CASCADE_DELETE = {("contact", "parentcustomerid")}
# (table, lookup column) pairs that are cleared when the target row goes (Remove Link).
_REMOVE_LINK = {("account", "parentaccountid"), ("account", "primarycontactid")}
_INDEXED = _CASCADE_DELETE | _REMOVE_LINK
_COMPACT_MIN = 1024


def utc_now() -> str:
    """The current UTC time the way the Web API writes DateTime values."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StoreError(Exception):
    """A write the store refuses; `status` is the HTTP status the control surface answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Row:
    """One live row; `values` holds every stored column by logical name."""

    id: str
    values: dict[str, Value]
    version: int
    created_version: int


@dataclass(slots=True)
class Tombstone:
    """A deleted row: kept so deltas can report it and in-flight full loads still see it."""

    row: Row
    version: int


class TableData:
    """The rows of one table plus its change and creation logs."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.rows: dict[str, Row] = {}
        self.tombstones: dict[str, Tombstone] = {}
        self._log_versions: list[int] = []
        self._log_ids: list[str] = []
        self._created_versions: list[int] = []
        self._created_ids: list[str] = []
        # lookup column -> target id -> ids of rows of this table pointing at it
        self.references: dict[str, dict[str, set[str]]] = {
            column: {} for (name, column) in _INDEXED if name == table.logical_name
        }

    def log_change(self, version: int, row_id: str) -> None:
        self._log_versions.append(version)
        self._log_ids.append(row_id)
        if len(self._log_ids) > _COMPACT_MIN + 2 * (len(self.rows) + len(self.tombstones)):
            live = [(r.version, i) for i, r in self.rows.items()]
            dead = [(t.version, i) for i, t in self.tombstones.items()]
            entries = sorted(live + dead)
            self._log_versions = [v for v, _ in entries]
            self._log_ids = [i for _, i in entries]

    def log_creation(self, version: int, row_id: str) -> None:
        self._created_versions.append(version)
        self._created_ids.append(row_id)
        if len(self._created_ids) > _COMPACT_MIN + 2 * (len(self.rows) + len(self.tombstones)):
            live = [(r.created_version, i) for i, r in self.rows.items()]
            dead = [(t.row.created_version, i) for i, t in self.tombstones.items()]
            entries = sorted(live + dead)
            self._created_versions = [v for v, _ in entries]
            self._created_ids = [i for _, i in entries]

    def index(self, row: Row, *, add: bool) -> None:
        for column, targets in self.references.items():
            target = row.values.get(column)
            if not isinstance(target, str):
                continue
            if add:
                targets.setdefault(target, set()).add(row.id)
            else:
                referencing = targets.get(target)
                if referencing is not None:
                    referencing.discard(row.id)
                    if not referencing:
                        del targets[target]

    def full_page(
        self,
        *,
        after: int,
        limit: int,
        snapshot: int | None,
        keep: Callable[[Row], bool] | None = None,
    ) -> tuple[list[Row], int | None]:
        """Rows in creation order after the cursor `after`; the next cursor when more remain.

        With a snapshot version, the page holds the rows that existed at that version (rows
        deleted since come from their tombstones, rows created since are left out), so a
        full load that takes minutes still sees every row that existed when it began. Without
        one it holds the rows that exist now, as ordinary paging does.
        """
        rows: list[Row] = []
        start = bisect.bisect_right(self._created_versions, after)
        ids = self._created_ids
        versions = self._created_versions
        for position in range(start, len(ids)):
            created = versions[position]
            if snapshot is not None and created > snapshot:
                break
            row_id = ids[position]
            row = self.rows.get(row_id)
            if row is None or row.created_version != created:
                tombstone = self.tombstones.get(row_id)
                if (
                    snapshot is None
                    or tombstone is None
                    or tombstone.row.created_version != created
                    or tombstone.version <= snapshot
                ):
                    continue
                row = tombstone.row
            if keep is not None and not keep(row):
                continue
            if len(rows) == limit:
                return rows, rows[-1].created_version
            rows.append(row)
        return rows, None

    def delta_page(
        self, *, since: int, until: int, deletes: bool, after: int, limit: int
    ) -> tuple[list[Row], list[str], tuple[bool, int] | None]:
        """Changes in (since, until]: upserts by version, then deletions by version.

        `deletes` and `after` say where the previous page stopped. Returns the changed rows,
        the deleted ids and, when more remain, where the next page starts.
        """
        changed: list[Row] = []
        deleted: list[str] = []
        for deletions in (True,) if deletes else (False, True):
            start = bisect.bisect_right(
                self._log_versions, after if deletions == deletes else since
            )
            for position in range(start, len(self._log_ids)):
                version = self._log_versions[position]
                if version > until:
                    break
                row_id = self._log_ids[position]
                if deletions:
                    tombstone = self.tombstones.get(row_id)
                    if tombstone is None or tombstone.version != version:
                        continue
                else:
                    row = self.rows.get(row_id)
                    if row is None or row.version != version:
                        continue
                if len(changed) + len(deleted) == limit:
                    # A full page and at least one more change: say where this page ended.
                    if deletions and deleted:
                        return changed, deleted, (True, self.tombstones[deleted[-1]].version)
                    return changed, deleted, (False, changed[-1].version)
                if deletions:
                    deleted.append(row_id)
                else:
                    changed.append(self.rows[row_id])
        return changed, deleted, None


class Store:
    """All tables of the simulated organisation and the version counter they share."""

    def __init__(self) -> None:
        self.version = 0
        # Delta tokens below this version are refused: raised by reset and expire_delta_tokens.
        self.token_floor = 0
        self.tables = {name: TableData(table) for name, table in TABLES.items()}

    def data(self, table: str) -> TableData:
        return self.tables[table]

    def reset(self) -> None:
        """Forget every row; the version counter goes on so old delta tokens stay detectable."""
        self.tables = {name: TableData(table) for name, table in TABLES.items()}
        self.expire_delta_tokens()

    def expire_delta_tokens(self) -> None:
        self.version += 1
        self.token_floor = self.version

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def get(self, table: str, row_id: str) -> Row | None:
        return self.tables[table].rows.get(row_id)

    def exists(self, table: str, row_id: str) -> bool:
        return row_id in self.tables[table].rows

    def insert(self, table: str, row_id: str, values: Mapping[str, Value]) -> Row:
        """Add one row; `values` must already be valid (the control surface checks them)."""
        data = self.tables[table]
        if row_id in data.rows:
            raise StoreError(409, f"A record with id {row_id} already exists in {table}.")
        version = self._next_version()
        now = utc_now()
        stored: dict[str, Value] = {"createdon": now, "modifiedon": now, **values}
        stored[data.table.primary_id] = row_id
        stored["versionnumber"] = version
        row = Row(row_id, stored, version, version)
        data.rows[row_id] = row
        # A row re-created with the id of a deleted one supersedes the deletion.
        data.tombstones.pop(row_id, None)
        data.index(row, add=True)
        data.log_change(version, row_id)
        data.log_creation(version, row_id)
        return row

    def update(
        self, table: str, row_id: str, values: Mapping[str, Value], *, tracked: bool = True
    ) -> Row:
        """`tracked` False leaves the change out of the change log: a change Dynamics made that
        no delta link returns (the fault `acctsync verify` exists to find). Plain queries see
        it; the row's earlier log entry no longer matches its version, so deltas skip it
        (until the log is next compacted, which rebuilds it from the rows)."""
        data = self.tables[table]
        row = data.rows.get(row_id)
        if row is None:
            raise StoreError(404, f"{table} With Id = {row_id} Does Not Exist")
        data.index(row, add=False)
        version = self._next_version()
        row.values.update(values)
        if "modifiedon" not in values:
            row.values["modifiedon"] = utc_now()
        row.values["versionnumber"] = version
        row.version = version
        data.index(row, add=True)
        if tracked:
            data.log_change(version, row_id)
        return row

    def delete(self, table: str, row_id: str) -> int:
        """Delete a row and apply the relationship cascades; returns how many rows went."""
        data = self.tables[table]
        row = data.rows.pop(row_id, None)
        if row is None:
            raise StoreError(404, f"{table} With Id = {row_id} Does Not Exist")
        # Taken out first, so a cycle of parent customers cannot bring us back here.
        data.index(row, add=False)
        deleted = 1
        for child_table, column in sorted(_INDEXED):
            children = self.tables[child_table].references[column].get(row_id, set())
            for child_id in list(children):
                if child_id not in self.tables[child_table].rows:
                    continue
                if (child_table, column) in _CASCADE_DELETE:
                    deleted += self.delete(child_table, child_id)
                else:
                    self.update(child_table, child_id, {column: None})
        version = self._next_version()
        data.tombstones[row_id] = Tombstone(row, version)
        data.log_change(version, row_id)
        return deleted

    def load(self, table: str, rows: Iterable[tuple[str, dict[str, Value]]]) -> int:
        """Bulk insert generated rows whose lookups may point at rows loaded later."""
        data = self.tables[table]
        count = 0
        primary_id = data.table.primary_id
        for row_id, values in rows:
            version = self._next_version()
            stored = {**values, primary_id: row_id, "versionnumber": version}
            row = Row(row_id, stored, version, version)
            data.rows[row_id] = row
            data.index(row, add=True)
            data.log_change(version, row_id)
            data.log_creation(version, row_id)
            count += 1
        return count
