"""A re-load's sweep of one mirror partition.

A full re-read of a table (an expired delta token, new columns, a refused link) brings back
the rows Dynamics still has, but no deletions. Every row it carried was stamped with the
re-load's generation, so once its batches are applied, a row of that table with an older
stamp is one Dynamics no longer has: it is flagged deleted (kept, as every deletion is), and a
contact leaves its account. Each partition is one message and one paged query, so a sweep
holds one page in memory however large the table, and partitions are swept side by side.
"""

from __future__ import annotations

from typing import Any

from shared.mirror.row import DELETED_AT, GENERATION, IS_DELETED, generation_of, is_deleted
from shared.mirror.writes import merge_all
from shared.state.results import BatchResult
from shared.sync.apply.context import ApplyContext
from shared.sync.batches import SweepBatch

# Rows flagged per round of writes: one page of the query.
_FLAG_EVERY = 1000


def sweep_partition(context: ApplyContext, sweep: SweepBatch) -> BatchResult:
    services = context.services
    records = services.contacts if sweep.entity_set == "contacts" else services.accounts
    rows = records.in_partition(
        sweep.partition, select=["PartitionKey", "RowKey", GENERATION, IS_DELETED, "accountid"]
    )
    stale: list[dict[str, Any]] = []
    for row in rows:
        if is_deleted(row) or generation_of(row) >= sweep.generation:
            continue
        stale.append(dict(row))
        if len(stale) == _FLAG_EVERY:
            _flag(context, sweep, stale)
            stale = []
    _flag(context, sweep, stale)
    return context.result


def _flag(context: ApplyContext, sweep: SweepBatch, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    services = context.services
    if sweep.entity_set == "contacts":
        for row in rows:
            if row.get("accountid"):
                services.members.remove(str(row["accountid"]), str(row["RowKey"]))
    table = services.contacts.table if sweep.entity_set == "contacts" else services.accounts.table
    context.deleted(sweep.entity_set.removesuffix("s"), (str(row["RowKey"]) for row in rows))
    merge_all(
        table,
        (
            {
                "PartitionKey": row["PartitionKey"],
                "RowKey": row["RowKey"],
                IS_DELETED: True,
                DELETED_AT: context.now,
            }
            for row in rows
        ),
    )
    context.result.deleted += len(rows)
