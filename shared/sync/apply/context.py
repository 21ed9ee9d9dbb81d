"""What the appliers of one batch share: the services, the batch, its result and its clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from azure.data.tables import TableEntity

from shared import telemetry
from shared.mapping import ColumnType, to_stored
from shared.mirror.feed_index import FeedWriter, Stream
from shared.mirror.initial import time_of
from shared.mirror.row import (
    DELETED_AT,
    GENERATION,
    SYNCED_AT,
    SyncMark,
    generation_of,
    is_deleted,
    version_of,
)
from shared.services import Services
from shared.state.results import BatchResult, ChangeLag
from shared.state.schedule import LoadMode
from shared.state.sync_errors import ErrorCode
from shared.sync.batches import Batch
from shared.times import utcnow


@dataclass
class ApplyContext:
    services: Services
    batch: Batch
    result: BatchResult = field(default_factory=BatchResult)
    now: datetime = field(default_factory=utcnow)
    change_lag: ChangeLag = field(default_factory=ChangeLag)
    # The records refused with a sync error, so that a re-read can say which did not apply.
    refused: list[str] = field(default_factory=list)
    # Records applied whole even at a version the mirror holds already: a repair of a row
    # that is wrong at Dynamics' own version (another account, other values).
    whole: frozenset[str] = frozenset()
    _marks: dict[Stream, SyncMark] = field(default_factory=dict, repr=False)

    def skips(self, old: TableEntity | None, record_id: str, version: int) -> bool:
        """Whether a change at `version` is one the mirror row `old` holds already."""
        return old is not None and version_of(old) >= version and record_id not in self.whole

    @cached_property
    def feed(self) -> FeedWriter:
        """The batch's change-feed entries, under the stamp of the batch."""
        identity = feed_identity(self.batch.cycle_id, self.batch.batch_id)
        return FeedWriter(self.services.feed, identity)

    def sync_mark(self, stream: Stream) -> SyncMark:
        """How the rows of `stream` this batch writes are marked synced: now, or, by a batch of
        a first load still under way, at the batch's feed stamp and as a first load's (no
        synced-stream entry: walks read such rows from the mirror, shared/mirror/initial.py)."""
        if stream not in self._marks:
            self._marks[stream] = self._first_load_mark(stream) or SyncMark(self.now)
        return self._marks[stream]

    def _first_load_mark(self, stream: Stream) -> SyncMark | None:
        if not self.first_load:
            return None
        # The stamp first: a load found open after it was taken ends after it (the load is
        # closed before its end is noted), so the load's interval holds every row it marks,
        # and the feed's watermark stays below them until the batch is applied.
        at_ms = self.feed.stamp.at_ms
        if not self.services.initial_loads.is_open(stream):
            return None  # applied apart from a planned first load (a replay): indexed
        return SyncMark(time_of(at_ms), load_sync=True)

    def synced(self, stream: Stream, rows: Iterable[Mapping[str, Any]]) -> None:
        """Index rows about to be written as synced (before they are written); a first load's
        rows are not indexed (see sync_mark)."""
        if self.sync_mark(stream).load_sync:
            return
        self.feed.write(
            stream,
            ((str(r["RowKey"]), {"id": r["RowKey"], "synced_at": r[SYNCED_AT]}) for r in rows),
        )

    def deleted(self, kind: str, ids: Iterable[str]) -> None:
        """Index records about to be flagged deleted (before they are)."""
        self.feed.write(
            Stream.DELETED,
            ((f"{kind}|{i}", {"type": kind, "id": i, "deleted_at": self.now}) for i in ids),
        )

    @property
    def first_load(self) -> bool:
        """A first load finds its rows missing: it writes them without reading first, and
        reads only the rows of a request that met one already there (a redelivery)."""
        return self.batch.mode == LoadMode.INITIAL

    @property
    def reload(self) -> bool:
        return self.batch.mode == LoadMode.RELOAD

    def generation(self, old: Mapping[str, Any] | None) -> int:
        """The generation a row written by this batch carries: a re-load's, or the one the
        row `old` had."""
        if self.reload:
            return self.batch.generation
        return generation_of(old) if old is not None else 0

    def reload_stamp(self, old: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """What a re-load writes on a row it saw and leaves as it is, so that its sweep does not
        flag the row deleted: the row's keys and the re-load's generation. None when the batch
        is no re-load, or the row carries its generation already."""
        generation = self.batch.generation
        if old is None or not self.reload or generation_of(old) == generation:
            return None
        return {
            "PartitionKey": old["PartitionKey"],
            "RowKey": old["RowKey"],
            GENERATION: generation,
        }

    def revives(self, old: Mapping[str, Any]) -> bool:
        """Whether applying a live change to the mirror row `old` clears its deletion flag: only
        when the change was read after the flag was set. Dynamics had the record then (a wrong
        flag); a change read earlier (a replayed batch older than the deletion) does not bring
        a deleted record back."""
        if not is_deleted(old):
            return False
        read_at, deleted_at = self.batch.read_at, old.get(DELETED_AT)
        return read_at is not None and (deleted_at is None or read_at > deleted_at)

    def error(self, entity: str, record_id: str, operation: str, message: str) -> None:
        """A record the mirror cannot hold: a sync error on it; the rest of the batch goes on."""
        self.result.errors += 1
        self.refused.append(record_id)
        self.services.errors.record(
            entity=entity,
            record_id=record_id,
            operation=operation,
            message=message,
            cycle_id=self.batch.cycle_id,
            code=ErrorCode.UNSTORABLE_VALUE,
        )

    def lag(self, modified_on: str | None) -> None:
        """How long after its change in Dynamics a row reached the mirror. Only a change read
        from the delta link counts: a first load or a re-load would measure the rows' age."""
        changed_at = change_time(modified_on)
        if changed_at is not None and self.batch.mode is LoadMode.DELTA:
            lag = max((utcnow() - changed_at).total_seconds(), 0.0)
            self.change_lag.observe(lag)  # kept per batch for the console's chart
            telemetry.observe("acctsync.change_lag_s", lag, mode=self.batch.mode.value)


def feed_identity(cycle_id: str, batch_id: str) -> str:
    """The unit of the change feed a queued batch is: its stamp and marker go by this."""
    return f"batch|{cycle_id}|{batch_id}"


def change_time(modified_on: str | None) -> datetime | None:
    if not modified_on:
        return None
    stored = to_stored("modifiedon", ColumnType.DATETIME, modified_on)
    return stored if isinstance(stored, datetime) else None
