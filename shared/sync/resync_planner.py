"""The resync planner: a cycle's resync step, the next chunk of the oldest queued re-sync.

It runs after the cycle's accounts are applied, reads with a plain query (a `$filter` on
`modifiedon`/`createdon` for an Advanced Sync) for at most one heartbeat's budget, and enqueues
batches that write only the re-synced column. Its position is kept with the re-sync, after the
page's batches are sent and under the cycle's lease, so a planner killed at any point reads at
most that page again (which writes the same values). The cycle then finishes as usual, and the
next one goes on with the next chunk: the normal sync is never held up for long.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from datetime import datetime

from shared import telemetry
from shared.dataverse.client import DataverseClient, LinkRefused
from shared.dataverse.columns import ACCOUNT_ID, SYSTEM_COLUMNS
from shared.mapping import ColumnType, web_api_property
from shared.mirror.records import bucket
from shared.services import Services
from shared.state.resync_queue import Resync, ResyncKind, ResyncStatus
from shared.state.schedule import LoadMode
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE
from shared.sync.batches import Batch, account_fragment
from shared.sync.claims import ClaimStore
from shared.sync.column_access import ColumnAccess
from shared.sync.lease import CycleLease
from shared.sync.planner import Progress, StepOutcome, StepPlanner
from shared.sync.readers import Fragment, RowErrors, account_change
from shared.sync.sender import BatchSender
from shared.times import iso, utcnow

logger = logging.getLogger(__name__)


class ResyncPlanner(StepPlanner):
    def __init__(
        self,
        services: Services,
        client: DataverseClient,
        lease: CycleLease,
        access: ColumnAccess,
        *,
        deadline: float,
        progress: Progress,
        stop: threading.Event,
    ):
        super().__init__(services, client, lease, deadline=deadline, progress=progress, stop=stop)
        self.access = access
        self.cycle_id = lease.state.cycle_id

    def run(self) -> StepOutcome:
        request = self._current()
        if request is None:
            return StepOutcome(True, 0)
        self.lease.state.plan.resync = request.id  # what the cycle's end reports to
        if request.status is ResyncStatus.QUEUED:
            request = self._save(
                replace(request, status=ResyncStatus.READING, started_at=utcnow(), total=None)
            )
            if request.kind is ResyncKind.QUICK:
                request = self._save(replace(request, total=self.total_rows("account")))
        plan = self.lease.state.plan
        sent_before = plan.batches
        errors = RowErrors(self.services.errors, self.cycle_id)
        try:
            self._read(request, errors)
        except LinkRefused as refused:
            # The query's paging cannot go on: the next cycle reads it again from the start
            # (what it wrote already is written again with the same values).
            logger.warning("re-sync %s: %s; reading it again from the start", request.id, refused)
            latest = self.services.resyncs.get(request.id) or request
            self._save(replace(latest, next_link=None, rows_read=0, pages=0))
        finally:
            plan.errors += errors.count
        return StepOutcome(True, plan.batches - sent_before)

    def _read(self, request: Resync, errors: RowErrors) -> None:
        column = request.field
        kind = self.access.selection.columns[column]
        plan = self.lease.state.plan
        sender = self._sender(request, column, kind)
        pages = self.client.rows(
            "accounts",
            [ACCOUNT_ID, web_api_property(column, kind), *SYSTEM_COLUMNS],
            where=range_filter(request.modified_since, request.modified_until),
            link=request.next_link,
            page_size=self.services.settings.page_size,
        )
        label = f"{column} re-sync"  # what the terminal's progress shows
        self.progress.started(label, LoadMode.RELOAD, total=request.total, done=request.rows_read)
        for page in pages:
            for row in page.rows:
                try:
                    change = account_change(row, {column: kind})
                except ValueError as error:
                    errors.bad_row("account", row.get(ACCOUNT_ID), str(error))
                    continue
                sender.add(
                    Fragment("accounts", bucket(change.id), change.id, account_fragment(change))
                )
            sender.end_page()
            sent = sender.sent - plan.batches
            plan.batches = sender.sent
            self.lease.write(plan=plan)  # the batch numbers go on from here; lease still ours
            self.progress.read(label, len(page.rows))
            last = page.next_link is None
            request = self._save(
                replace(
                    request,
                    next_link=page.next_link,
                    rows_read=request.rows_read + len(page.rows),
                    pages=request.pages + 1,
                    batches=request.batches + sent,
                    status=ResyncStatus.APPLYING if last else ResyncStatus.READING,
                    cycle_id=self.cycle_id if last else request.cycle_id,
                ),
                renew=False,  # written with the plan just now
            )
            if last or not self.going_on():
                return

    def _sender(self, request: Resync, column: str, kind: ColumnType) -> BatchSender:
        """Batches that write only the re-synced column, numbered on from the plan's."""
        header = Batch(
            self.cycle_id,
            "",
            LoadMode.DELTA,
            {column: kind},
            traceparent=telemetry.current_traceparent(),
            resync=request.id,
        )
        return BatchSender(
            self.services.storage.queue(BATCH_QUEUE),
            ClaimStore(self.services.storage.container(BATCH_CONTAINER)),
            header,
            sent_before=self.lease.state.plan.batches,
            progress=self.progress,
        )

    def _current(self) -> Resync | None:
        """The re-sync to read now; ends those that are over or can no longer be read."""
        while (request := self.services.resyncs.current()) is not None:
            if request.status is ResyncStatus.APPLYING:
                if request.cycle_id == self.cycle_id:
                    return None  # its last chunk is this cycle's: nothing left to read
                # The cycle that read its last chunk finished without saying so (a crash).
                self._save(replace(request, status=ResyncStatus.FINISHED, finished_at=utcnow()))
                continue
            why = self._unreadable(request.field)
            if why is None:
                return request
            self._save(
                replace(request, status=ResyncStatus.CANCELLED, finished_at=utcnow(), message=why)
            )
        return None

    def _unreadable(self, column: str) -> str | None:
        if column not in self.access.selection.columns:
            return f"{column} is no longer selected"
        if column in self.access.readable():
            return None
        known = self.access.known().get(column)
        return f"the sync user can no longer read {column}: {known.why if known else 'unknown'}"

    def _save(self, request: Resync, *, renew: bool = True) -> Resync:
        if renew:
            self.lease.renew()  # only while this heartbeat still holds the cycle
        saved = self.services.resyncs.save(request)
        if saved is None:
            raise RuntimeError(f"re-sync {request.id} changed under the planner; retrying")
        return saved


def range_filter(since: datetime | None, until: datetime | None) -> str | None:
    """Advanced Sync's `$filter`: created or modified within the range (either bound open)."""
    if since is None and until is None:
        return None

    def within(column: str) -> str:
        bounds = [f"{column} ge {iso(since)}"] if since else []
        bounds += [f"{column} le {iso(until)}"] if until else []
        return " and ".join(bounds)

    return f"({within('modifiedon')}) or ({within('createdon')})"
