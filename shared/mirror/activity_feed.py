"""The activity feed's entries: one per change of one field of one account, naming up to
GROUP_SIZE of the contacts it was logged for, so a fan-out of 5,000 contacts adds a dozen
entities to the 5,000 activities it writes, not 5,000 more.

An entry's key after the stamp is `<account>|<change key>|<field>|<chunk>`: the contacts of a
fan-out come in membership (contact-id) order, so the same change splits into the same chunks
on every delivery, and a redelivery writes the same entries again. A page of the feed expands
entries into activities; a position is the last entry served whole and how many contacts of
the next one were served already.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableEntity

from shared.mirror.feed_index import (
    MAX_REQUESTS,
    Feed,
    FeedWriter,
    Stream,
    caught_up,
    start_position,
)
from shared.mirror.stream_range import ShardPaging

GROUP_SIZE = 400  # 400 GUIDs with commas: about 15,000 characters, under a property's 32,767
# Entries a page reads at a time, at most: a fan-out's entry holds hundreds of activities, a
# small account's a few, so a page asks for as many as the entries read so far say it needs.
READ_GROUPS = 1_000  # the most the service answers in one request
# A page's guess of the activities an entry holds when its token carries none (the first).
GUESSED_PER_ENTRY = 16.0
# What the feed's readers use of an entry (activity_json's, the page's, the shard merge's): not
# the service's own Timestamp, whose decoding took about a twelfth of a read's client time. A
# property an entry lacks (`*_truncated`) comes back empty.
ENTRY_PROPERTIES = (
    "PartitionKey",
    "RowKey",
    "type",
    "accountid",
    "field",
    "old",
    "new",
    "old_truncated",
    "new_truncated",
    "reason",
    "source",
    "at",
    "contacts",
    "count",
)
# The most entries an export asks one shard for at a time: 16 shards of 250 fan-out entries of
# 15,000 characters stay under 60 MB.
EXPORT_SHARD_PAGE = 250


class ActivityGroups:
    """Feed entries of one unit's activities, built as the activities are produced."""

    def __init__(self, writer: FeedWriter):
        self.writer = writer
        self._open: dict[tuple[str, str, str], tuple[dict[str, Any], list[str]]] = {}
        self._chunks: dict[tuple[str, str, str], int] = {}
        self.ready: list[dict[str, Any]] = []

    def add(self, contact_id: str, change_key: str, activity: Mapping[str, Any]) -> None:
        """One activity (its table entity) of `contact_id`."""
        key = (str(activity["accountid"]), change_key, str(activity["field"]))
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = (dict(activity), [])
        group[1].append(contact_id)
        if len(group[1]) == GROUP_SIZE:
            self._close(key)

    def take_all(self) -> list[dict[str, Any]]:
        """Every entry, the unfinished ones too (the end of a round of writes)."""
        for key in list(self._open):
            self._close(key)
        ready, self.ready = self.ready, []
        return ready

    def _close(self, key: tuple[str, str, str]) -> None:
        shared, contacts = self._open.pop(key)
        chunk = self._chunks.get(key, 0)
        self._chunks[key] = chunk + 1
        shared.pop("PartitionKey", None)
        shared.pop("RowKey", None)
        suffix = "|".join(key) + f"|{chunk:05d}"
        values = {**shared, "contacts": ",".join(contacts), "count": len(contacts)}
        self.ready.append(self.writer.entry(Stream.ACTIVITIES, suffix, values))


@dataclass(frozen=True)
class ActivityPage:
    """Activities (each with its contact), where the next page starts, and whether more were
    already there."""

    items: list[tuple[TableEntity, str]]
    position: dict[str, Any]
    more: bool


def activities_since(feed: Feed, since_ms: int) -> Iterator[tuple[TableEntity, str]]:
    """Every activity logged at or after `since_ms`, up to the watermark of when it started
    (exports): the stream's range read straight through, EXPORT_SHARD_PAGE entries a shard
    at a time (an export reads every entry: few large pages; entries of a fan-out are large,
    so not larger: memory stays bounded)."""
    paging = ShardPaging(EXPORT_SHARD_PAGE, EXPORT_SHARD_PAGE, ENTRY_PROPERTIES)
    entries = feed.range(
        Stream.ACTIVITIES, start_position(since_ms), feed.stamps.watermark(), paging=paging
    )
    for entry in entries:
        yield from ((entry, contact) for contact in str(entry["contacts"]).split(","))


def activity_page(
    feed: Feed, position: Mapping[str, Any], limit: int, *, fields: set[str] | None = None
) -> ActivityPage:
    """Up to `limit` activities after `position`, in logging order (only those of `fields`).
    The stream is read as the page fills, each shard asked for about as many entries as the
    page needs at the contacts per entry the previous page met (carried in its token)."""
    page = _PageBuilder(limit, int(position.get("skip", 0)), fields)
    after = str(position["after"])
    watermark, carried = feed.watermark_for(position)
    per_entry = max(float(position.get("per", GUESSED_PER_ENTRY)), 1.0)
    paging = ShardPaging.for_entries(math.ceil(limit / per_entry) + 1, most=READ_GROUPS).asking(
        ENTRY_PROPERTIES
    )
    skip = page.skip
    while True:
        entries = feed.range(Stream.ACTIVITIES, after, watermark, paging=paging, skip=skip)
        for entry in entries:
            if not page.add(entry):
                entries.serve_again(entry)
                feed.park(Stream.ACTIVITIES, entries, after, watermark, page.skip)
                return page.done(_at(after, watermark, page.skip, page.per_entry), True)
            after = str(entry["RowKey"])
            if page.full or page.read_enough:
                feed.park(Stream.ACTIVITIES, entries, after, watermark)
                return page.done(_at(after, watermark, 0, page.per_entry), True)
        if not carried:
            return page.done(_at(caught_up(watermark), watermark, 0, page.per_entry), False)
        # At the watermark the token carried: read on to a fresh one.
        after, (watermark, carried) = caught_up(watermark), (feed.stamps.watermark(), False)
        skip = 0


class _PageBuilder:
    """The activities of one API page, entry after entry."""

    def __init__(self, limit: int, skip: int, fields: set[str] | None):
        self.limit, self.skip, self.fields = limit, skip, fields
        self.items: list[tuple[TableEntity, str]] = []
        self.entries_read = self.contacts_read = 0

    def add(self, entry: TableEntity) -> bool:
        """Serve the entry's activities (after those served already); False when the page
        filled within it (`skip` then says how many of its contacts are served)."""
        self.entries_read += 1
        self.contacts_read += int(entry.get("count") or 1)  # None: not in the entry
        wanted = self.fields is None or entry["field"] in self.fields
        contacts = str(entry["contacts"]).split(",")[self.skip :] if wanted else []
        room = self.limit - len(self.items)
        if len(contacts) > room:
            self.items.extend((entry, contact) for contact in contacts[:room])
            self.skip += room
            return False
        self.items.extend((entry, contact) for contact in contacts)
        self.skip = 0
        return True

    @property
    def full(self) -> bool:
        return len(self.items) >= self.limit

    @property
    def read_enough(self) -> bool:
        """A filtered page stops after this many entries, full or not (a page is bounded)."""
        return self.entries_read >= MAX_REQUESTS * READ_GROUPS

    @property
    def per_entry(self) -> float:
        return self.contacts_read / self.entries_read if self.entries_read else GUESSED_PER_ENTRY

    def done(self, position: dict[str, Any], more: bool) -> ActivityPage:
        return ActivityPage(self.items, position, more)


def _at(after: str, watermark: int, skip: int, per_entry: float) -> dict[str, Any]:
    """A position in the feed, with the watermark read up to and the contacts per entry met
    so far (the next page's token)."""
    position: dict[str, Any] = {"after": after, "wm": watermark, "per": round(per_entry, 1)}
    if skip:
        position["skip"] = skip
    return position
