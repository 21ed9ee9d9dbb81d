"""A verify's passes over one table, a unit of work at a time (shared/verify/step.py runs
them under the lease): pass 1 pages Dynamics into per-cell digests while the mirror's
partitions are read into the same digests; pass 2 compares the cells whose digests differ row
by row, a group of cells at a time, and counts as pending what changed since the last cycle
read the table.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shared.dataverse.client import DataverseClient
from shared.mirror.records import MirroredRecords
from shared.services import Services
from shared.verify.cells import cell_groups, cell_of
from shared.verify.classify import drift_of
from shared.verify.dynamics_reads import changed_since, dynamics_page
from shared.verify.mirror import leave_out_pending, mirror_done, mirror_round, rows_in_cells
from shared.verify.progress import RunStore, Stage, TableRun, VerifyRun

# Dynamics rows a row-by-row comparison holds at most (cells are grouped to stay under it).
MAX_HELD_ROWS = 50_000


class TablePasses:
    def __init__(self, services: Services, runs: RunStore, client: DataverseClient):
        self.services = services
        self.runs = runs
        self.client = client

    def step(self, run: VerifyRun, table: TableRun) -> None:
        """The next unit of work of the table's stage."""
        if table.stage is Stage.DYNAMICS:
            self._dynamics_page(table)
        elif table.stage is Stage.MIRROR:
            self._mirror_round(table)
        else:
            self._cells(run, table)

    def _dynamics_page(self, table: TableRun) -> None:
        """A page of Dynamics, with a round of the mirror's partitions read meanwhile: the
        two sides wait on different servers, and each has digests of its own."""
        page_size = self.services.settings.page_size
        with ThreadPoolExecutor(1, thread_name_prefix="acctsync-verify") as beside:
            mirror = self._records(table).table
            round_ = None if mirror_done(table) else beside.submit(mirror_round, mirror, table)
            rows, link = dynamics_page(
                self.client, table.spec, link=table.link, page_size=page_size
            )
            if round_ is not None:
                round_.result()
        for row in rows:
            if row.filtered:
                continue  # out of scope: the sync filter keeps it out
            if row.pending(table.read_at):
                table.add_pending(row.id)
                continue
            table.checked += 1
            table.dynamics.add(row.fingerprint())
        table.link, table.pages = link, table.pages + 1
        if link is None:
            table.stage, table.pages = Stage.MIRROR, 0

    def _mirror_round(self, table: TableRun) -> None:
        mirror = self._records(table).table
        if not mirror_done(table):
            mirror_round(mirror, table)
        if mirror_done(table):
            leave_out_pending(mirror, table)
            cells = table.dynamics.differing(table.mirror)
            table.groups = cell_groups(cells, table.dynamics.counts, max_rows=MAX_HELD_ROWS)
            table.stage = Stage.CELLS if table.groups else Stage.DONE

    def _cells(self, run: VerifyRun, table: TableRun) -> None:
        """Pass 2 for the first group of cells: a page of Dynamics kept, or (all held) the
        row-by-row comparison."""
        group, spec, verify_id = set(table.groups[0]), table.spec, run.request.id
        if not table.group_read:
            page_size = self.services.settings.page_size
            rows, link = dynamics_page(self.client, spec, link=table.link, page_size=page_size)
            kept = [r for r in rows if cell_of(r.id) in group]
            if kept:
                self.runs.hold(verify_id, spec.entity_set, table.pages, kept)
            table.link, table.pages, table.group_read = link, table.pages + 1, link is None
            return
        held = {r.id: r for r in self.runs.held(verify_id, spec.entity_set)}
        pending = set(table.pending) | {i for i, r in held.items() if r.pending(table.read_at)}
        mirror = {r.id: r for r in rows_in_cells(self._records(table).table, spec, group)}
        candidates = list(drift_of(spec.entity_set, held, mirror, pending=pending))
        if candidates and table.changed_since is None:
            cursor = self.services.cursors.get(spec.entity_set)
            table.changed_since = changed_since(self.client, spec, cursor)
        changed = set(table.changed_since or ())
        for drift in candidates:
            if drift.id in changed:
                table.add_pending(drift.id)  # the next cycle takes it
            else:
                table.add_drift(drift)
        self.runs.drop_held(verify_id, spec.entity_set)
        table.groups.pop(0)
        table.link, table.pages, table.group_read = None, 0, False
        if not table.groups:
            table.stage = Stage.DONE

    def _records(self, table: TableRun) -> MirroredRecords:
        return self.services.accounts if table.entity_set == "accounts" else self.services.contacts
