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

from shared.mirror.feed import MAX_REQUESTS, Feed, FeedWriter, Stream, start_position

GROUP_SIZE = 400  # 400 GUIDs with commas: about 15,000 characters, under a property's 32,767
# Entries a page reads at a time, at most: a fan-out's entry holds hundreds of activities, a
# small account's a few, so a page asks for as many as the entries read so far say it needs.
READ_GROUPS = 1_000  # the most the service answers in one request


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
    (exports): the stream's range read straight through, READ_GROUPS entries a request."""
    watermark = feed.stamps.watermark()
    after = start_position(since_ms)
    while True:
        scan = feed.scan(Stream.ACTIVITIES, after, READ_GROUPS, watermark=watermark)
        for entry in scan.entries:
            yield from ((entry, contact) for contact in str(entry["contacts"]).split(","))
        if not scan.more:
            return
        after = scan.position


def activity_page(
    feed: Feed, position: Mapping[str, Any], limit: int, *, fields: set[str] | None = None
) -> ActivityPage:
    """Up to `limit` activities after `position`, in logging order (only those of `fields`)."""
    after, skip = str(position["after"]), int(position.get("skip", 0))
    items: list[tuple[TableEntity, str]] = []
    watermark, carried = feed.watermark_for(position)
    read = contacts_read = 0
    for _ in range(MAX_REQUESTS):
        # Guess how many entries the rest of the page needs from those read (at first, as if
        # each held 16 activities: a page asks for a few entries of a fan-out too many, and
        # for the entries of small accounts in one or two requests).
        average = contacts_read / read if read else 16
        wanted_entries = math.ceil((limit - len(items)) / max(average, 1.0)) + 1
        scan = feed.scan(
            Stream.ACTIVITIES, after, min(READ_GROUPS, wanted_entries), watermark=watermark
        )
        read += len(scan.entries)
        contacts_read += sum(int(entry.get("count", 1)) for entry in scan.entries)
        for entry in scan.entries:
            wanted = fields is None or entry["field"] in fields
            contacts = str(entry["contacts"]).split(",")[skip:] if wanted else []
            room = limit - len(items)
            if len(contacts) > room:
                items.extend((entry, contact) for contact in contacts[:room])
                return ActivityPage(items, _at(after, watermark, skip + room), True)
            items.extend((entry, contact) for contact in contacts)
            after, skip = str(entry["RowKey"]), 0
        if not scan.more:
            if not carried:
                return ActivityPage(items, _at(scan.position, watermark), False)
            # At the watermark the token carried: read on to a fresh one.
            after, (watermark, carried) = scan.position, (feed.stamps.watermark(), False)
        elif not scan.entries:
            break
        if len(items) >= limit:
            break
    return ActivityPage(items, _at(after, watermark, skip), True)


def _at(after: str, watermark: int, skip: int = 0) -> dict[str, Any]:
    """A position in the feed, with the watermark read up to (the next page's token)."""
    position: dict[str, Any] = {"after": after, "wm": watermark}
    if skip:
        position["skip"] = skip
    return position
