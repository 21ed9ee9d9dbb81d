"""What a verify reads from the mirror: each of the 64 partitions in key order with a narrow
select, a few side by side, one page each at a time."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.mirror.queries import Token, partition_page
from shared.mirror.records import PARALLEL_READS, all_buckets, bucket
from shared.mirror.service_pages import service_page
from shared.mirror.writes import run_parallel
from shared.verify.cells import CellSums, cell_of, cell_sums, partition_of_cell
from shared.verify.compared_rows import MirrorRow, TableSpec
from shared.verify.progress import TableRun

ROWS_PER_PAGE = 1000
# Partitions read side by side in one round: a round costs about one round trip whatever
# its width, and a small table's partitions are each one page, so wider rounds are fewer.
PARTITIONS_PER_ROUND = 16


def read_page(
    table: TableClient, spec: TableSpec, partition: str, token: Token
) -> tuple[list[MirrorRow], Token]:
    """One page of a partition from `token` (None: its start) and the token of the next
    (None: the partition is read)."""
    select = spec.mirror_select()
    if select is not None:  # a few plain properties: the lean way
        page = partition_page(table, partition, select=select, top=ROWS_PER_PAGE, token=token)
        return [spec.mirror_row(entity) for entity in page.rows], page.next
    # The SDK's token is the dict of the next keys, though typed as text.
    rows, following = service_page(
        table.query_entities(
            "PartitionKey eq @p",
            parameters={"p": partition},
            select=spec.mirror_select(),
            results_per_page=ROWS_PER_PAGE,
        ).by_page(continuation_token=cast(Any, token))
    )
    return [spec.mirror_row(entity) for entity in rows], following


def mirror_round(table: TableClient, run: TableRun) -> None:
    """Read one page of up to PARTITIONS_PER_ROUND partitions into the mirror's digests; the run
    then says where each partition goes on."""
    started = [p for p in run.partitions]
    fresh = [p for p in all_buckets() if p not in run.partitions and p not in run.done_partitions]
    chosen = (started + fresh)[:PARTITIONS_PER_ROUND]

    def read(partition: str) -> tuple[str, CellSums, Token]:
        rows, token = read_page(table, run.spec, partition, run.partitions.get(partition))
        # Reduced here, so that a round holds a few sums per partition, not 16 pages of rows:
        # held until the round ended, those made the peak RSS grow with the table's size.
        return partition, cell_sums(r.fingerprint() for r in rows if r.compared), token

    for partition, sums, token in run_parallel(read, chosen, width=PARTITIONS_PER_ROUND):
        # A partition's cells are its own: no other partition's rows touch them.
        run.mirror.add_sums(sums)
        if token is None:
            run.partitions.pop(partition, None)
            run.done_partitions.append(partition)
        else:
            run.partitions[partition] = token


def mirror_done(run: TableRun) -> bool:
    return len(run.done_partitions) == len(all_buckets())


def leave_out_pending(table: TableClient, run: TableRun) -> None:
    """Take the rows Dynamics changed after the last cycle read the table back out of the
    mirror's digests: the mirror was read beside Dynamics, before those were all known (a
    point read each; they are few, and the next cycle takes them)."""
    for record_id in run.pending:
        try:
            entity = table.get_entity(bucket(record_id), record_id, select=run.spec.mirror_select())
        except ResourceNotFoundError:
            continue
        row = run.spec.mirror_row(entity)
        if row.compared:
            run.mirror.remove(row.fingerprint())


def rows_in_cells(table: TableClient, spec: TableSpec, cells: Collection[int]) -> list[MirrorRow]:
    """Every mirror row of `cells`, deleted and filtered ones included."""
    wanted = set(cells)
    partitions = sorted({partition_of_cell(c) for c in wanted})

    def scan(partition: str) -> list[MirrorRow]:
        found: list[MirrorRow] = []
        token: Token = None
        while True:
            rows, token = read_page(table, spec, partition, token)
            found += [r for r in rows if cell_of(r.id) in wanted]
            if token is None:
                return found

    return [row for rows in run_parallel(scan, partitions, width=PARALLEL_READS) for row in rows]
