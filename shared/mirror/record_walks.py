"""Paged walks of the mirror: accounts, contacts, an account's contacts, and those synced since
a time. Every page is one bounded query (or a few, when the service answers short pages) from
where the last one stopped; what a walk may return is fixed by keys that never change.

- A whole table is walked in key order (PartitionKey bucket, RowKey id) with the service's own
  continuation: a row's keys never change, so a row there for the whole walk is met exactly
  once, however the rows change meanwhile.
- An account's contacts are its membership range (and its former members' range with the
  deleted ones), read side by side in contact-id order and merged.
- "Synced since" walks the time-ordered index the apply step writes (shared.mirror.feed_index) and
  serves an entry only while it is the row's latest: a row synced again later shows up again,
  later, with its newer values, and never twice for one sync. A walk from before the oldest
  time the index still holds whole (the feeds' retention removed entries) is refused
  (RangeGone): it would miss records silently. A first load's rows have no entries: the walk
  reads them from the mirror table (SinceWalk).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableEntity

from shared.mirror.feed_index import (
    MAX_REQUESTS,
    Feed,
    RangeGone,
    Stream,
    caught_up,
    stamp_ms,
    start_position,
)
from shared.mirror.initial import InitialLoads, first_load_rows
from shared.mirror.members import Memberships
from shared.mirror.records import MirroredRecords, fields_of, labels_shown
from shared.mirror.row import IS_DELETED, SYNCED_AT, is_deleted, local_edits
from shared.mirror.service_pages import service_page
from shared.state.field_selections import FieldSelection
from shared.times import iso

Position = dict[str, Any]
FieldsOf = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class RecordPage:
    rows: list[TableEntity]
    position: Position | None  # where the next page starts; None: the walk is over


def table_page(
    records: MirroredRecords, position: Position | None, limit: int, *, include_deleted: bool
) -> RecordPage:
    """A page of the whole table in key order, continued from the service's continuation."""
    rows: list[TableEntity] = []
    continuation = (position or {}).get("c")
    for _ in range(MAX_REQUESTS):
        size = limit - len(rows)
        if include_deleted:
            query = records.table.list_entities(results_per_page=size)
        else:
            query = records.table.query_entities(f"{IS_DELETED} eq false", results_per_page=size)
        page, continuation = service_page(query.by_page(continuation_token=continuation))
        rows.extend(page)
        if not continuation or len(rows) >= limit:
            break
    return RecordPage(rows, {"c": continuation} if continuation else None)


def synced_page(
    feed: Feed,
    stream: Stream,
    records: MirroredRecords,
    position: str,
    limit: int,
    *,
    include_deleted: bool,
    watermark: int | None = None,
) -> RecordPage:
    """A page of the rows synced after `position`, in the order they were synced (up to the
    `watermark`, when given)."""
    scan = feed.scan(stream, position, limit, watermark=watermark)
    rows = records.get_many(str(e["id"]) for e in scan.entries)
    current: list[TableEntity] = []
    for entry in scan.entries:
        row = rows.get(str(entry["id"]))
        if row is None or row.get(SYNCED_AT) != entry.get("synced_at"):
            continue  # synced again since: it comes again, later in the walk
        if include_deleted or not is_deleted(row):
            current.append(row)
    return RecordPage(current, {"after": scan.position} if scan.more else None)


def records_page(
    feed: Feed,
    loads: InitialLoads,
    stream: Stream,
    records: MirroredRecords,
    position: Position | None,
    limit: int,
    *,
    since_ms: int | None,
    include_deleted: bool,
) -> RecordPage:
    """One page of a list: the whole table in key order, or (`since_ms`) the rows synced
    since then: those first loads wrote, then the others in the order they were synced."""
    if since_ms is None:
        return table_page(records, position, limit, include_deleted=include_deleted)
    after = str((position or {}).get("after") or start_position(since_ms))
    # Every page, not only the first: the retention may pass a long walk (RangeGone).
    feed.require_kept(stamp_ms(after))
    walk = SinceWalk(feed, loads, stream, records, include_deleted=include_deleted)
    if position is None:
        return walk.start(since_ms, limit)
    return walk.page(position, limit)


@dataclass(frozen=True)
class SinceWalk:
    """A `modified_since` walk in two parts. A first load writes no synced-stream entry
    (shared/mirror/initial.py): the rows first loads marked synced in a time range the walk
    covers are read from the mirror table (part 1: a filtered query, in key order), and the
    rows synced otherwise from the stream (part 2, in the order they were synced).

    Part 1 runs first, up to the watermark the walk starts with; then the stream from
    `since`. When the stream is caught up with a later watermark and a first load may have
    marked rows in between (it was under way), a last part 1 reads those and the walk ends
    there. A row comes once per sync: a first load's row synced again is marked
    `load_sync = false`, so part 1 no longer finds it and part 2 serves its new sync.

    A position holds the stream's (`after`), the time up to which first-load rows are served
    (`to`), and while part 1 goes on its end (`hi`), the service's continuation in it (`c`)
    and whether the walk ends with it (`last`)."""

    feed: Feed
    loads: InitialLoads
    stream: Stream
    records: MirroredRecords
    include_deleted: bool

    def start(self, since_ms: int, limit: int) -> RecordPage:
        position: Position = {"after": start_position(since_ms), "to": since_ms}
        watermark = self.feed.stamps.watermark()  # before the loads: one begun later is above
        if self.loads.overlap(self.stream, since_ms, watermark):
            return self.page({**position, "hi": watermark}, limit)
        return self._stream(position, since_ms, limit, watermark)

    def page(self, position: Position, limit: int) -> RecordPage:
        # A token from before first loads were apart has no `to`: its stream holds them.
        loaded_to = int(position.get("to", stamp_ms(str(position["after"]))))
        if "hi" in position:
            return self._first_loads(position, loaded_to, limit)
        return self._stream(position, loaded_to, limit, self.feed.stamps.watermark())

    def _stream(self, position: Position, loaded_to: int, limit: int, watermark: int) -> RecordPage:
        """Part 2 up to `watermark`; at its end, the first-load rows it passed (a last part 1)."""
        page = synced_page(
            self.feed,
            self.stream,
            self.records,
            str(position["after"]),
            limit,
            include_deleted=self.include_deleted,
            watermark=watermark,
        )
        if page.position is not None:
            return RecordPage(page.rows, {**page.position, "to": loaded_to})
        if self.loads.overlap(self.stream, loaded_to, watermark):
            last = {"after": caught_up(watermark), "to": loaded_to, "hi": watermark, "last": 1}
            return RecordPage(page.rows, last)
        return RecordPage(page.rows, None)

    def _first_loads(self, position: Position, loaded_to: int, limit: int) -> RecordPage:
        """Part 1: the rows first loads marked synced in [to, hi), in key order."""
        high = int(position["hi"])
        rows, continuation = first_load_rows(
            self.records.table,
            loaded_to,
            high,
            position.get("c"),
            limit,
            include_deleted=self.include_deleted,
            max_requests=MAX_REQUESTS,
        )
        if continuation:
            return RecordPage(rows, {**position, "c": continuation})
        if position.get("last"):
            return RecordPage(rows, None)
        return RecordPage(rows, {"after": position["after"], "to": high})


def range_gone(gone: RangeGone, retention_days: float) -> str:
    """What a refused walk's answer says first: since when the index is whole, and why."""
    return (
        f"the walk starts before {iso(gone.kept_from)}, the oldest time the change index still "
        f"holds every synced record from (FEED_RETENTION_DAYS keeps {retention_days:g} days), "
        "so records synced before then would be missing"
    )


def walk_records(
    feed: Feed,
    loads: InitialLoads,
    stream: Stream,
    records: MirroredRecords,
    *,
    since_ms: int | None,
    include_deleted: bool,
    page_size: int = 1000,
) -> Iterator[TableEntity]:
    """Every row a list walk serves, page after page (exports): the API's walk, whole. The
    next page is read while the rows of this one are used (two pages held at most)."""

    def read(position: Position | None) -> RecordPage:
        return records_page(
            feed,
            loads,
            stream,
            records,
            position,
            page_size,
            since_ms=since_ms,
            include_deleted=include_deleted,
        )

    with ThreadPoolExecutor(1, thread_name_prefix="acctsync-walk") as reader:
        coming = reader.submit(read, None)
        while True:
            page = coming.result()
            if page.position is not None:
                coming = reader.submit(read, page.position)
            yield from page.rows
            if page.position is None:
                return


def account_contacts_page(
    members: Memberships,
    contacts: MirroredRecords,
    account_id: str,
    position: Position | None,
    limit: int,
    *,
    include_deleted: bool,
) -> RecordPage:
    """A page of an account's contacts in contact-id order (with the deleted ones: its
    former members too, whose row still names the account)."""
    after = str((position or {}).get("after", ""))
    live, live_more = members.after(account_id, after, limit)
    former, former_more = (
        members.after(account_id, after, limit, former=True) if include_deleted else ([], False)
    )
    # A range cut short ends at its last id: the merged page may not pass the first such end,
    # or it would skip what that range holds beyond it.
    ends = [ids[-1] for ids, more in ((live, live_more), (former, former_more)) if more and ids]
    end = min(ends) if ends else None
    ids = sorted({*live, *former})
    if end is not None:
        ids = [i for i in ids if i <= end]
    rows = contacts.get_many(ids)
    members_now = set(live)
    kept = []
    for contact_id in ids:
        row = rows.get(contact_id)
        if row is None:
            continue
        if contact_id in members_now:
            if include_deleted or not is_deleted(row):
                kept.append(row)
        elif str(row.get("accountid") or "") == account_id:
            kept.append(row)
    return RecordPage(kept, {"after": end} if end is not None else None)


def account_item(row: TableEntity, fields: FieldsOf) -> dict[str, Any]:
    """An account as lists and exports show it (its contact count is GET /api/accounts/{id}'s:
    counting every account of a page would cost a query each)."""
    shown = fields(fields_of(row))
    return {
        "accountid": str(row["RowKey"]),
        "fields": shown,
        "formatted": labels_shown(row, shown),
        "is_deleted": is_deleted(row),
        "locally_modified": local_edits(row),
        "synced_at": iso(row.get(SYNCED_AT)),
    }


def contact_item(row: TableEntity) -> dict[str, Any]:
    shown = fields_of(row)
    return {
        "contactid": str(row["RowKey"]),
        "accountid": str(row.get("accountid") or "") or None,
        "fields": shown,
        "formatted": labels_shown(row, shown),
        "is_deleted": is_deleted(row),
        "synced_at": iso(row.get(SYNCED_AT)),
    }


def account_fields(selection: FieldSelection | None) -> FieldsOf:
    """The fields an account shows: the selected columns only (a deselected one keeps its
    last value, unshown)."""
    if selection is None:
        return lambda fields: fields
    columns = list(selection.columns)
    return lambda fields: {name: fields.get(name) for name in columns}
