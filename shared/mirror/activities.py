"""Change Data Value activities: PartitionKey bucket(contact), RowKey
contact|inverted time|change|field, so one contact's log is one key range, newest first."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.data.tables import TableClient

from shared.mapping import activity_value
from shared.mirror.activity_feed import ActivityGroups
from shared.mirror.feed_index import FeedWriter
from shared.mirror.records import bucket
from shared.mirror.writes import (
    MAX_TRANSACTION_ENTITIES,
    PARALLEL_TRANSACTIONS,
    upsert_all,
    upsert_chunks,
)
from shared.storage import TableRepository
from shared.times import inverted_ms, iso_precise

CHANGE_DATA_VALUE = "Change Data Value"


@dataclass(frozen=True)
class Activity:
    """One Change Data Value activity on one contact."""

    contact_id: str
    account_id: str
    field: str
    old: Any
    new: Any
    reason: str
    source: str
    at: Any  # datetime
    change_key: str  # the same change always has the same key: redelivery cannot log twice

    def entity(self) -> dict[str, Any]:
        old, old_cut = activity_value(self.old)
        new, new_cut = activity_value(self.new)
        entity: dict[str, Any] = {
            "PartitionKey": bucket(self.contact_id),
            "RowKey": f"{self.contact_id}|{inverted_ms(self.at)}|{self.change_key}|{self.field}",
            "type": CHANGE_DATA_VALUE,
            "accountid": self.account_id,
            "field": self.field,
            "old": old,
            "new": new,
            "reason": self.reason,
            "source": self.source,
            "at": self.at,
        }
        # Text too long for one property is kept cut, and says so.
        if old_cut:
            entity["old_truncated"] = True
        if new_cut:
            entity["new_truncated"] = True
        return entity


def activity_json(entity: Mapping[str, Any]) -> dict[str, Any]:
    """An activity as the API shows it."""
    shown: dict[str, Any] = {
        "type": entity["type"],
        "field": entity["field"],
        "old": json.loads(entity["old"]),
        "new": json.loads(entity["new"]),
        "reason": entity["reason"],
        "source": entity["source"],
        "at": iso_precise(entity["at"]),
        "accountid": entity["accountid"],
    }
    for side in ("old", "new"):
        if entity.get(f"{side}_truncated"):
            shown[f"{side}_truncated"] = True
    return shown


def feed_activities_json(
    items: Iterable[tuple[Mapping[str, Any], str]],
) -> Iterator[dict[str, Any]]:
    """Activities of the change feed (entry, contact) as the API and exports show them: each
    entry's values are decoded once for all of its contacts."""
    shown: tuple[int, dict[str, Any]] = (0, {})
    for entry, contact_id in items:
        if shown[0] != id(entry):
            shown = (id(entry), activity_json(entry))
        yield {**shown[1], "contactid": contact_id}


class ActivityLog(TableRepository):
    def write(self, activities: list[Activity]) -> int:
        upsert_all(self.table, (a.entity() for a in activities))
        return len(activities)

    def for_contact(self, contact_id: str, *, limit: int = 500) -> list[dict[str, Any]]:
        """A contact's activities, newest first, from its own key range only."""
        pages = self.table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={
                "pk": bucket(contact_id),
                "low": contact_id + "|",
                "high": contact_id + "}",
            },
            results_per_page=min(limit, 1000),
        )
        result: list[dict[str, Any]] = []
        for entity in pages:
            if len(result) >= limit:
                break
            result.append(activity_json(entity))
        return result


class ActivityWriter:
    """Writes activities as they are produced, never holding a whole fan-out.

    Each contact partition gets a buffer; a buffer that reaches a full transaction is written
    (a few side by side), and everything is written once `max_pending` entities wait, so the
    activities of a batch of many large accounts still fill transactions while memory stays
    bounded whatever the batch holds. With a `feed`, the activities' change-feed entries are
    built alongside and written in the same rounds.
    """

    def __init__(
        self,
        table: TableClient,
        *,
        feed: FeedWriter | None = None,
        max_pending: int = 64 * MAX_TRANSACTION_ENTITIES,
    ):
        self.table = table
        self.max_pending = max_pending
        self._feed = ActivityGroups(feed) if feed is not None else None
        self._buffers: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._full: list[list[dict[str, Any]]] = []
        self._pending = 0
        self.written = 0

    def add(self, activity: Activity) -> None:
        entity = activity.entity()
        if self._feed is not None:
            self._feed.add(activity.contact_id, activity.change_key, entity)
        buffer = self._buffers[entity["PartitionKey"]]
        buffer.append(entity)
        self._pending += 1
        if len(buffer) == MAX_TRANSACTION_ENTITIES:
            self._full.append(self._buffers.pop(entity["PartitionKey"]))
            if len(self._full) == PARALLEL_TRANSACTIONS:
                self._write_full()
        if self._pending >= self.max_pending:
            self.flush()

    def flush(self) -> None:
        """Write everything still waiting (the feed's entries first: they are what holds
        readers back, and a crash before the activities is redone under the same keys)."""
        if self._feed is not None:
            self._feed.writer.write_entries(self._feed.take_all())
        self._write_full()
        waiting = [entity for buffer in self._buffers.values() for entity in buffer]
        self._buffers.clear()
        if waiting:
            upsert_all(self.table, waiting)
        self.written += len(waiting)
        self._pending = 0

    def _write_full(self) -> None:
        if self._full:
            upsert_chunks(self.table, self._full)
            written = sum(len(chunk) for chunk in self._full)
            self.written += written
            self._pending -= written
            self._full = []
