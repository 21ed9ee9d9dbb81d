"""Planning one step of a cycle: a table's pages read and enqueued, or a re-load's sweep.

A table is read from where its chain stands (shared/sync/chain_start.py decides: the
checkpoint of a chain under way, else the stored delta link, else from the start). After each
page's batches are sent, the position (the page's next link) and the counts are checkpointed
under the lease, so a planner killed at any point loses at most that page, which the next
heartbeat reads again. One heartbeat plans for at most the budget, then leaves the rest to the
next. The delta link is committed only after the last page.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from shared.dataverse.client import ChangePage, DataverseClient, DataverseError, LinkRefused
from shared.mirror.initial import synced_stream
from shared.mirror.records import all_buckets
from shared.services import Services
from shared.state.cursors import Cursor
from shared.state.schedule import LoadMode, TablePlan
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE
from shared.sync.batches import Batch
from shared.sync.chain_start import Chain, chain_after_refusal, chain_start
from shared.sync.claims import ClaimStore
from shared.sync.lease import CycleLease
from shared.sync.readers import TableReader
from shared.sync.select_fields import backfilled
from shared.sync.sender import BatchSender, SendProgress
from shared.times import iso_precise, parse_iso, utcnow

logger = logging.getLogger(__name__)


class Progress(SendProgress, Protocol):
    """Where long work reports how far it got (the terminal, locally)."""

    def started(self, entity_set: str, mode: LoadMode, *, total: int | None, done: int) -> None:
        """A table's reading begins (or goes on): of `total` rows when known, `done` read."""
        ...

    def read(self, entity_set: str, rows: int) -> None: ...


@dataclass(frozen=True)
class StepOutcome:
    done: bool  # the step is planned whole (a table's delta link committed)
    enqueued: int  # batches this heartbeat sent for it


class StepPlanner:
    """What a planning step works with: the services, Dataverse, the cycle's lease, and for
    how long it may go on reading pages."""

    def __init__(
        self,
        services: Services,
        client: DataverseClient,
        lease: CycleLease,
        *,
        deadline: float,
        progress: Progress,
        stop: threading.Event | None = None,
    ):
        """`deadline`: time.monotonic() after which no further page is started; `stop`: set
        when the host is stopping (no further page either)."""
        self.services = services
        self.client = client
        self.lease = lease
        self.deadline = deadline
        self.progress = progress
        self.stop = stop or threading.Event()

    def going_on(self) -> bool:
        return time.monotonic() < self.deadline and not self.stop.is_set()

    def total_rows(self, logical: str) -> int | None:
        """How many rows a full read of the table will see (one request, for the progress
        shown); None when Dataverse does not say."""
        try:
            return self.client.metadata.total_records([logical]).get(logical)
        except DataverseError as error:
            logger.info("no row count of %s for the progress shown: %s", logical, error)
            return None


class TablePlanner(StepPlanner):
    def __init__(
        self,
        services: Services,
        client: DataverseClient,
        lease: CycleLease,
        reader: TableReader,
        *,
        deadline: float,
        progress: Progress,
        stop: threading.Event | None = None,
    ):
        super().__init__(services, client, lease, deadline=deadline, progress=progress, stop=stop)
        self.reader = reader
        self.entity_set = reader.entity_set
        self.select = ",".join(reader.select)

    def run(self) -> StepOutcome:
        cursor = self.services.cursors.get(self.entity_set)
        chain = chain_start(
            self.lease.state.checkpoints.get(self.entity_set),
            cursor,
            select=self.select,
            backfill=self.reader.backfill,
        )
        if chain.mode is LoadMode.INITIAL:
            # Before any batch of it is sent: its rows go unindexed (shared/mirror/initial.py).
            self.services.initial_loads.begin(synced_stream(self.entity_set))
        plan = self.lease.state.plan
        table = plan.tables.setdefault(
            self.entity_set,
            TablePlan(chain.mode, generation=chain.generation, first_batch=plan.batches + 1),
        )
        table.mode, table.generation = chain.mode, chain.generation
        table.sweep_skipped = chain.unapplied or None
        sent_before = plan.batches
        try:
            return self._read(chain, table, cursor, sent_before)
        except LinkRefused as refused:
            chain = chain_after_refusal(chain, cursor, self.reader.backfill)
            table.mode, table.generation = chain.mode, chain.generation
            table.sweep_skipped = None  # a new generation: only this chain's batches count
            table.restarted = (
                f"Dataverse refused the stored link of {self.entity_set} ({refused}); "
                f"re-reading {self.entity_set} in full"
            )
            logger.warning("cycle %s: %s", self.lease.state.cycle_id, table.restarted)
            return self._read(chain, table, cursor, sent_before)

    def _read(
        self, chain: Chain, table: TablePlan, cursor: Cursor | None, sent_before: int
    ) -> StepOutcome:
        plan = self.lease.state.plan
        rows_read, pages = chain.rows_read, chain.pages
        if chain.total is None and chain.mode is not LoadMode.DELTA:
            # A delta's size is not known before it is read.
            chain = replace(chain, total=self.total_rows(self.entity_set.removesuffix("s")))
        if chain.read_from is None:
            chain = replace(chain, read_from=iso_precise(utcnow()))
        sender = _LazySender(self, chain, sent_before=plan.batches)
        self.progress.started(self.entity_set, chain.mode, total=chain.total, done=rows_read)
        changed_before = self.reader.changed
        chain_pages = prefetched(self._pages(chain), self.going_on)
        with contextlib.closing(chain_pages):
            for page in chain_pages:
                if page.rows or page.deleted_ids:
                    active = sender.get()
                    for fragment in self.reader.fragments(page):
                        active.add(fragment)
                    active.end_page()
                rows_read += len(page.rows) + len(page.deleted_ids)
                pages += 1
                table.changed += self.reader.changed - changed_before
                changed_before = self.reader.changed
                table.pages += 1
                plan.batches = table.last_batch = sender.sent
                self.progress.read(self.entity_set, len(page.rows) + len(page.deleted_ids))
                if page.delta_link is not None:
                    self._commit(page, chain, cursor)
                    return StepOutcome(True, sender.sent - sent_before)
                assert page.next_link is not None
                checkpoint = chain.checkpoint(
                    self.select, page.next_link, rows_read=rows_read, pages=pages
                )
                self.lease.write(
                    checkpoints={**self.lease.state.checkpoints, self.entity_set: checkpoint},
                    plan=plan,
                )
                if not self.going_on():
                    return StepOutcome(False, sender.sent - sent_before)
        raise AssertionError("a change-tracking chain ends with its delta link")

    def _pages(self, chain: Chain) -> Iterator[ChangePage]:
        if chain.link is not None:
            self.client.check_stored_link(chain.link)
        return self.client.changes(
            self.entity_set,
            self.reader.select,
            link=chain.link,
            resume=chain.resume,
            page_size=self.services.settings.page_size,
        )

    def _commit(self, page: ChangePage, chain: Chain, cursor: Cursor | None) -> None:
        """The chain is read to its end: store its delta link, then forget its checkpoint. A
        crash in between re-reads the last page from the checkpoint and commits again."""
        assert page.delta_link is not None
        self.lease.renew()  # only while this heartbeat still holds the lease
        generation = chain.generation if chain.mode is LoadMode.RELOAD else 0
        if chain.mode is LoadMode.DELTA and cursor is not None:
            generation = cursor.generation
        read_at = parse_iso(chain.read_from) if chain.read_from else None
        self.services.cursors.commit(
            Cursor(self.entity_set, page.delta_link, self.select, utcnow(), generation, read_at)
        )
        checkpoints = dict(self.lease.state.checkpoints)
        if checkpoints.pop(self.entity_set, None) is not None:
            self.lease.stage(checkpoints=checkpoints)  # the step's end writes it
        # Every row now carries the newly selected columns.
        backfilled(self.services, self.reader.table, list(chain.backfill))


def prefetched(
    pages: Iterator[ChangePage], going_on: Callable[[], bool]
) -> Generator[ChangePage, None, None]:
    """The pages, the next one read while this one is packed and sent (Dataverse pages come
    one after the other, by their links; the queue does not have to wait for it)."""
    with ThreadPoolExecutor(1, thread_name_prefix="acctsync-page") as reader:
        upcoming: Future[ChangePage | None] | None = reader.submit(next, pages, None)
        while upcoming is not None and (page := upcoming.result()) is not None:
            # Not past the budget: a page read for nothing would only be read again.
            ahead = page.next_link is not None and going_on()
            upcoming = reader.submit(next, pages, None) if ahead else None
            yield page
            if upcoming is None and page.next_link is not None and going_on():
                upcoming = reader.submit(next, pages, None)


class _LazySender:
    """The step's batch sender, made when the first page with changes comes: a batch's header
    names the columns it carries, and knowing those may take a request (the grants of a
    secured column) that an idle cycle does not need."""

    def __init__(self, planner: TablePlanner, chain: Chain, *, sent_before: int):
        self.planner = planner
        self.chain = chain
        self.sent_before = sent_before
        self._sender: BatchSender | None = None

    @property
    def sent(self) -> int:
        return self._sender.sent if self._sender is not None else self.sent_before

    def get(self) -> BatchSender:
        if self._sender is None:
            planner, chain = self.planner, self.chain
            generation = chain.generation if chain.mode is LoadMode.RELOAD else 0
            header = planner.reader.header(planner.lease.state.cycle_id, chain.mode, generation)
            assert chain.read_from is not None  # set before the chain's first page
            self._sender = BatchSender(
                planner.services.storage.queue(BATCH_QUEUE),
                ClaimStore(planner.services.storage.container(BATCH_CONTAINER)),
                replace(header, read_at=parse_iso(chain.read_from)),
                sent_before=self.sent_before,
                progress=planner.progress,
            )
        return self._sender


def plan_sweep(services: Services, lease: CycleLease, entity_set: str, progress: Progress) -> int:
    """After a table's re-load: one message per mirror partition, each flagging the rows the
    re-load did not see as deleted. Returns the batches sent.

    Only when every batch of the re-load was applied: the rows of one that was not (in the
    poison queue) still carry an older generation, and would be flagged deleted although
    Dynamics has them. The sweep is then skipped, and said why; the table's generation stays,
    so a replay of the batch stamps its rows, and the next re-load sweeps in full."""
    plan = lease.state.plan
    table = plan.tables[entity_set]
    if table.sweep_skipped is None:
        cycle_id = lease.state.cycle_id
        missing = services.results.unapplied(cycle_id, table.batch_ids())
        if missing:
            table.sweep_skipped = sweep_blocked(entity_set, cycle_id, missing)
    if table.sweep_skipped:
        logger.warning("cycle %s: sweep skipped: %s", lease.state.cycle_id, table.sweep_skipped)
        lease.write(plan=plan)
        return 0
    generation = table.generation
    sender = BatchSender(
        services.storage.queue(BATCH_QUEUE),
        ClaimStore(services.storage.container(BATCH_CONTAINER)),
        Batch(lease.state.cycle_id, "", LoadMode.RELOAD, {}),
        sent_before=plan.batches,
        progress=progress,
    )
    for partition in all_buckets():
        sender.send_sweep(entity_set, partition, generation)
    sender.end_page()
    sent = sender.sent - plan.batches
    plan.batches = sender.sent
    lease.write(plan=plan)
    return sent


def sweep_blocked(entity_set: str, cycle_id: str, missing: list[str]) -> str:
    """Why a re-load must not sweep: batches of it that did not apply."""
    named = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
    return (
        f"{len(missing)} batch(es) of the re-load of {entity_set} in cycle {cycle_id} did not "
        f"apply ({named}): the sweep is skipped, so rows Dynamics deleted are flagged only by "
        "the next re-load; fix the cause, then `acctsync replay-poison` applies them"
    )
