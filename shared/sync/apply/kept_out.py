"""Accounts the sync filter keeps out (an explicit No): never written when not mirrored;
marked `sync_filtered` and left as they are when they were (Yes → No), so they go stale
rather than disappear. Their ids are kept for status either way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.data.tables import TableEntity

from shared.mirror.records import bucket
from shared.mirror.row import (
    FILTERED_AT,
    SYNC_FILTERED,
    is_deleted,
    is_sync_filtered,
    version_of,
)
from shared.mirror.writes import merge_all
from shared.sync.apply.context import ApplyContext
from shared.sync.batches import AccountChange


def keep_out(
    context: ApplyContext, changes: list[AccountChange], existing: Mapping[str, TableEntity]
) -> None:
    """Mark the mirrored ones among `changes` (the filter's) and record them all."""
    if not changes:
        return
    context.services.filtered.add_all(c.id for c in changes)
    marks: list[dict[str, Any]] = []
    for change in changes:
        assert change.version is not None
        context.result.filtered += 1
        old = existing.get(change.id)
        if old is None or is_deleted(old):
            continue  # never mirrored (or gone): nothing to keep
        marked = is_sync_filtered(old)
        if not marked and version_of(old) > change.version:
            continue  # older than what the mirror holds (a redelivery after Yes again)
        # A re-load stamps the rows it saw, or its sweep would flag a kept account deleted.
        stamp = context.reload_stamp(old)
        if marked and stamp is None:
            continue
        mark: dict[str, Any] = {"PartitionKey": bucket(change.id), "RowKey": change.id}
        if not marked:
            # The version stays the last one applied: the change that says Yes again is
            # newer, and is applied as a first load.
            mark.update({SYNC_FILTERED: True, FILTERED_AT: context.now})
        if stamp is not None:
            mark.update(stamp)
        marks.append(mark)
    merge_all(context.services.accounts.table, marks)
