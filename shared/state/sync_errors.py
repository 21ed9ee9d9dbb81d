"""Sync errors (Marketo's "Sync Errors"): record-level ones (a row the mirror cannot hold) and
job-level ones (a batch that went to the poison queue, a cycle whose planning failed), each with
its record id, operation, error code and message. Newest first; kept for the retention setting
(SYNC_ERROR_RETENTION_DAYS), older ones removed by the cycle."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.mirror.writes import delete_all, merge_all
from shared.state.list_filter import ListFilter
from shared.storage import TableRepository
from shared.times import inverted_ms, iso, newest_first_query, utcnow

# Table keys refuse / \ # ? and control characters.
_UNSAFE_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class ErrorCode(StrEnum):
    BAD_ROW = "bad_row"  # Dataverse sent a row the mirror cannot key
    UNSTORABLE_VALUE = "unstorable_value"  # a value Table Storage cannot hold
    BATCH_POISONED = "batch_poisoned"  # a batch failed every attempt
    PLANNING_FAILED = "planning_failed"  # a cycle's reading of Dynamics failed
    SYNC_ERROR = "sync_error"  # recorded without a code (by an older version)


def _code(stored: str | None) -> ErrorCode:
    """A stored code; one this version does not know (written by another) reads as a plain
    sync error rather than hiding the whole list."""
    try:
        return ErrorCode(stored or ErrorCode.SYNC_ERROR)
    except ValueError:
        return ErrorCode.SYNC_ERROR


@dataclass(frozen=True, kw_only=True)
class SyncError:
    """One error as Sync Errors lists it; `to_json` is what status and the console show."""

    entity: str  # account, contact (a record), batch or cycle
    record_id: str  # the record's id as Dataverse sent it (or the batch's, the cycle's)
    operation: str
    code: ErrorCode
    message: str
    retry_message: str = ""  # why the record still failed when it was retried
    cycle_id: str
    at: datetime
    # Set once the record was retried (acctsync retry-errors): when, and whether it applied.
    retried_at: datetime | None = None
    resolved: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "id": self.record_id,
            "operation": self.operation,
            "code": self.code.value,
            "message": self.message,
            "cycle_id": self.cycle_id,
            "at": iso(self.at),
            "retried_at": iso(self.retried_at),
            "resolved": self.resolved,
            "retry_message": self.retry_message,
        }

    @classmethod
    def from_row(cls, row: Any) -> SyncError:
        """A stored row; one an older version wrote without a code is a plain sync error."""
        return cls(
            entity=row["entity"],
            record_id=row["record_id"],
            operation=row["operation"],
            code=_code(row.get("code")),
            message=row["message"],
            cycle_id=row["cycle_id"],
            at=row["at"],
            retried_at=row.get("retried_at") or None,
            resolved=row.get("resolved"),
            retry_message=row.get("retry_message") or "",
        )


@dataclass(frozen=True, kw_only=True)
class ErrorFilter(ListFilter):
    """What the console's Sync Errors page asks for: text in the record id or the message."""

    entity: str = ""
    code: str = ""
    cycle_id: str = ""

    def matches(self, error: SyncError) -> bool:
        needle = self.needle
        return (
            (not needle or needle in error.record_id.lower() or needle in error.message.lower())
            and (not self.entity or error.entity == self.entity)
            and (not self.code or error.code == self.code)
            and (not self.cycle_id or error.cycle_id == self.cycle_id)
        )


@dataclass(frozen=True)
class RetryMark:
    """What retrying the record of one error (its key) came to: "" resolved, or the failure."""

    key: str
    failure: str


class SyncErrors(TableRepository):
    PARTITION = "errors"

    def record(
        self,
        *,
        entity: str,
        record_id: str,
        operation: str,
        message: str,
        cycle_id: str,
        code: ErrorCode = ErrorCode.SYNC_ERROR,
    ) -> None:
        now = utcnow()
        # The id may be whatever a bad row carried: keep it whole in a property, and only a
        # key-safe form of it in the RowKey.
        safe_id = _UNSAFE_KEY.sub("_", record_id)[:100]
        self.table.upsert_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": f"{inverted_ms(now)}|{entity}|{safe_id}",
                "entity": entity,
                "record_id": record_id,
                "operation": operation,
                "code": code.value,
                "message": message[:2000],
                "cycle_id": cycle_id,
                "at": now,
            }
        )

    def latest(self, count: int = 50) -> list[SyncError]:
        return self.search(ErrorFilter(), count=count)

    def search(self, wanted: ErrorFilter, *, count: int) -> list[SyncError]:
        """Up to `count` errors matching `wanted`, newest first. The time range is a key
        range; the rest is matched here, over at most the retention's worth of rows."""
        return [error for _, error in self.keyed(wanted, count=count)]

    def keyed(self, wanted: ErrorFilter, *, count: int) -> list[tuple[str, SyncError]]:
        """What `search` finds, each with the key `mark_retried` takes."""
        if count <= 0:
            return []
        result: list[tuple[str, SyncError]] = []
        for row in self._rows(since=wanted.since, until=wanted.until):
            error = SyncError.from_row(row)
            if wanted.matches(error):
                result.append((str(row["RowKey"]), error))
                if len(result) >= count:
                    break
        return result

    def mark_retried(self, marks: Iterable[RetryMark], *, at: datetime) -> None:
        """Say on each error that its record was read again from Dynamics and applied at
        `at`, and whether that resolved it (or the new failure's message when not)."""
        merge_all(
            self.table,
            (
                {
                    "PartitionKey": self.PARTITION,
                    "RowKey": mark.key,
                    "retried_at": at,
                    "resolved": not mark.failure,
                    "retry_message": mark.failure[:2000],
                }
                for mark in marks
            ),
        )

    def remove_older_than(self, cutoff: datetime) -> int:
        """Delete the errors recorded before `cutoff`: the oldest key range, 100 a request."""
        return delete_all(self.table, self._rows(since=None, until=cutoff, keys_only=True))

    def _rows(
        self, *, since: datetime | None, until: datetime | None, keys_only: bool = False
    ) -> Iterator[Any]:
        query, parameters = newest_first_query(self.PARTITION, since, until)
        select = ["PartitionKey", "RowKey"] if keys_only else None
        yield from self.table.query_entities(
            query, parameters=parameters, select=select, results_per_page=1000
        )
