"""The verify step: one heartbeat's share of a verify, under the cycle row's lease.

Per table, contacts first (the passes: shared/verify/passes.py): pass 1 pages Dynamics (the
key, its version and what scope takes) into per-cell digests, then reads the mirror's
partitions into the same digests; the cells whose digests differ are compared row by row in
pass 2 (Dynamics paged again keeping only those cells' rows, in groups that hold a bounded
number of rows, against the mirror rows of those cells). A candidate is checked against the
table's stored delta link before it counts as drift: what changed since the last cycle read the
table is pending. Then, when asked, the drift is repaired. The position (after a page, a round
of partitions, a group, a chunk of repair) is saved every few seconds and when the heartbeat
stops after its budget; the next goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from shared import telemetry
from shared.dataverse.client import DataverseClient
from shared.mapping import ColumnType
from shared.services import Services
from shared.state.schedule import Phase
from shared.state.verify import VerifyRequest, VerifyResult
from shared.storage import BATCH_CONTAINER
from shared.sync.column_access import check_columns
from shared.sync.failures import explain
from shared.sync.lease import CycleLease, LeaseLost
from shared.times import utcnow
from shared.verify.compared_rows import TableSpec
from shared.verify.passes import TablePasses
from shared.verify.progress import RunStore, TableRun, VerifyRun
from shared.verify.repair import repair_chunk
from shared.verify.result import result_of

logger = logging.getLogger(__name__)

VERIFY_RETRY = (
    "it starts over; the next scheduled verify does by itself. If it keeps failing, check "
    "DATAVERSE_URL, the network and the org's health with `acctsync validate`"
)
# How often the loop renews the lease itself, between units.
RENEW_EVERY_S = 5.0
# How often the position is saved, between units, and when a heartbeat stops: a verify that
# dies does this much again (units are read-only or idempotent), and a small table's verify
# is not a save per page.
SAVE_EVERY_S = 2.0


class VerifyAction(StrEnum):
    CHECKPOINTED = "checkpointed"  # the budget ran out; the next heartbeat goes on
    FINISHED = "finished"
    BUSY = "busy"  # the lease was lost to another heartbeat


@dataclass(frozen=True)
class VerifyOutcome:
    action: VerifyAction
    verify_id: str = ""
    result: VerifyResult | None = None


class VerifyStep:
    def __init__(
        self, services: Services, lease: CycleLease, *, stop: threading.Event | None = None
    ):
        self.services = services
        self.lease = lease
        self.stop = stop or threading.Event()
        self.deadline = time.monotonic() + services.settings.plan_budget_seconds
        self.runs = RunStore(services.storage.container(BATCH_CONTAINER))

    def run(self) -> VerifyOutcome:
        request = self.services.verifies.running()
        if request is None:  # finished, but the phase was not given back: give it back now
            self.lease.release(phase=Phase.IDLE, step=None)
            return VerifyOutcome(VerifyAction.FINISHED)
        run: VerifyRun | None = None
        try:
            with self.lease.kept():
                client = self.services.dataverse()
                sent = client.stats.requests
                run = self.runs.load(request.id) or self._new_run(request, client)
                run.heartbeats += 1
                renewed = saved = time.monotonic()
                while True:
                    finished = self._unit(run, client)
                    run.requests += client.stats.requests - sent
                    sent = client.stats.requests
                    if finished:
                        break
                    stopping = time.monotonic() >= self.deadline or self.stop.is_set()
                    if stopping or time.monotonic() - saved >= SAVE_EVERY_S:
                        self.runs.save(run)
                        saved = time.monotonic()
                    if time.monotonic() - renewed >= RENEW_EVERY_S:
                        # Says at once when another heartbeat took the verify over (the
                        # keeper renews too, but only logs a loss).
                        self.lease.renew()
                        renewed = time.monotonic()
                    if stopping:
                        self.lease.release()
                        return VerifyOutcome(VerifyAction.CHECKPOINTED, request.id)
        except LeaseLost as lost:
            logger.warning(
                "verify %s: %s; the heartbeat that took it over goes on", request.id, lost
            )
            return VerifyOutcome(VerifyAction.BUSY, request.id)
        except Exception as error:
            explained = explain(error)
            # A failed verify is over (its position is dropped): no cycle takes it up again.
            fix = f"{explained.fix}; then " if explained.needs_action else ""
            fix += f"run `acctsync verify` again ({VERIFY_RETRY})"
            logger.error("verify %s failed: %s. Fix: %s", request.id, explained.message, fix)
            failed = run or VerifyRun(request, utcnow(), [])
            return self._finish(failed, error=f"{explained.message}. Fix: {fix}")
        return self._finish(run)

    def _new_run(self, request: VerifyRequest, client: DataverseClient) -> VerifyRun:
        """The tables to verify: what the last cycle's column check stored, so that a verify
        of a clean mirror costs its pages and nothing else; --deep checks the columns now."""
        account_columns: dict[str, ColumnType] = {}
        contact_columns: dict[str, ColumnType] = {}
        sync_filter = self.services.filtered.filter()
        if request.deep:
            checked = check_columns(self.services, client)
            account_columns, contact_columns = (
                checked.account.readable(),
                checked.contact.readable(),
            )
            sync_filter = checked.sync_filter
        column = sync_filter.column if sync_filter is not None and sync_filter.active else ""
        specs = [
            TableSpec("contacts", request.deep, contact_columns),
            TableSpec("accounts", request.deep, account_columns, column),
        ]
        return VerifyRun(request, utcnow(), [TableRun(s, self._read_at(s)) for s in specs])

    def _read_at(self, spec: TableSpec) -> datetime | None:
        cursor = self.services.cursors.get(spec.entity_set)
        if cursor is None:
            return None
        return cursor.read_at or cursor.updated_at

    def _unit(self, run: VerifyRun, client: DataverseClient) -> bool:
        """One unit of work; True when the verify has nothing left."""
        table = run.current
        if table is not None:
            TablePasses(self.services, self.runs, client).step(run, table)
            return False
        return not (run.request.repair and repair_chunk(self.services, client, run))

    def _finish(self, run: VerifyRun, *, error: str | None = None) -> VerifyOutcome:
        result = result_of(run, finished_at=utcnow(), error=error)
        self.services.verifies.finished(result)
        self.runs.drop(run.request.id)
        # What the "drift left" alert watches is what a repair could not mend; what was found
        # before it says how far the mirror had drifted.
        telemetry.observe("acctsync.verify_drift", result.drift_left)
        telemetry.observe("acctsync.verify_drift_found", result.drift)
        logger.info("verify finished", extra=result.to_json())
        try:
            self.lease.release(phase=Phase.IDLE, step=None)
        except LeaseLost:
            return VerifyOutcome(VerifyAction.BUSY, run.request.id, result)
        return VerifyOutcome(VerifyAction.FINISHED, run.request.id, result)
