"""The sync cycle: a heartbeat decides, under a lease, whether a cycle starts or finishes.

A cycle reads changes from the stored delta links (a full load when there are none), packs them
into batches, enqueues them, and only then commits the new delta links: a crash before the
commit means the next cycle re-reads the same changes, which the apply step ignores as already
applied. It does so in two stages, contacts first: their batches are applied before the
accounts are even read, so an account change fans out to the contacts the account has after
this cycle's moves, whatever order the workers take the messages in (one stage with both
would let a contact that moves get the old or the new account's activities by chance).
A stage that enqueues nothing goes straight on to the next. The cycle finishes when every
batch of its last stage has left the queue, and the next one starts SYNC_INTERVAL_MINUTES later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import telemetry
from shared.dataverse.client import ChangePage, DataverseClient, DeltaTokenExpired
from shared.dataverse.columns import (
    ACCOUNT_ID,
    CONTACT_COLUMNS,
    CONTACT_ID,
    PARENT_CUSTOMER,
    PARENT_TYPE,
    account_select,
    contact_select,
)
from shared.ids import InvalidId, parse_guid
from shared.mapping import ColumnType, UnstorableValue, web_api_property
from shared.mirror.records import bucket
from shared.services import Services
from shared.state.tables import Schedule, iso, utcnow
from shared.storage import BATCH_QUEUE
from shared.sync.apply import contact_row
from shared.sync.batches import (
    AccountChange,
    Batch,
    BatchPacker,
    ContactChange,
    Kind,
    Mode,
    Packed,
    account_fragment,
    contact_fragment,
    encode_batch,
    header_budget,
    member_fragment,
)
from shared.sync.fields import backfilled, current_selection, refresh_readability

logger = logging.getLogger(__name__)

LEASE_RENEW_EVERY_S = 60.0
RETRY_AFTER_FAILURE = timedelta(minutes=1)
ACCOUNTS, CONTACTS = "accounts", "contacts"
STAGES = (CONTACTS, ACCOUNTS)


class Progress(Protocol):
    """Where long work reports how far it got (the terminal, locally)."""

    def read(self, entity_set: str, rows: int) -> None: ...

    def enqueued(self, batches: int, records: int) -> None: ...


class _NoProgress:
    def read(self, entity_set: str, rows: int) -> None:
        pass

    def enqueued(self, batches: int, records: int) -> None:
        pass


_default_progress: Progress = _NoProgress()


def report_progress_to(progress: Progress) -> None:
    """Where heartbeats without a progress of their own report (the local host's terminal)."""
    global _default_progress
    _default_progress = progress


@dataclass
class Heartbeat:
    """What one heartbeat did."""

    action: str  # "planned", "finished", "waiting", "idle" or "busy"
    cycle_id: str = ""
    backlog: int = 0
    next_due: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def heartbeat(
    services: Services,
    *,
    owner: str,
    force: bool = False,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> Heartbeat:
    """One tick: finish the running cycle when its batches are done, or start a due one."""
    now = now or utcnow()
    schedule = services.schedule.read()
    if schedule.phase == "applying":
        backlog = queue_backlog(services)
        if backlog:
            return Heartbeat("waiting", schedule.cycle_id, backlog=backlog)
        if schedule.stage != STAGES[-1]:
            resumed = services.schedule.resume(
                schedule, owner=owner, now=now, lease=_lease(services)
            )
            if resumed is None:
                return Heartbeat("busy", schedule.cycle_id)
            return _plan(services, resumed, progress)
        summary = finish_cycle(services, schedule, now=now)
        if summary is None:
            return Heartbeat("busy", schedule.cycle_id)
        return Heartbeat(
            "finished", schedule.cycle_id, next_due=iso(schedule.next_due), summary=summary
        )
    started = services.schedule.try_start(owner=owner, now=now, lease=_lease(services), force=force)
    if started is None:
        current = services.schedule.read()
        action = "idle" if current.phase == "idle" else "busy"
        return Heartbeat(action, current.cycle_id, next_due=iso(current.next_due))
    return _plan(services, started, progress)


def _plan(services: Services, schedule: Schedule, progress: Progress | None) -> Heartbeat:
    try:
        plan = plan_cycle(services, schedule, progress=progress or _default_progress)
    except Exception:
        # Give the lease back so the next heartbeat retries instead of waiting for it to
        # expire; what was enqueued is applied anyway, and the cursors did not move.
        services.schedule.abandon(schedule, now=utcnow(), retry_in=RETRY_AFTER_FAILURE)
        raise
    return Heartbeat("planned", schedule.cycle_id, summary=plan)


def queue_backlog(services: Services) -> int:
    properties = services.storage.queue(BATCH_QUEUE).get_queue_properties()
    return int(properties.approximate_message_count or 0)


def finish_cycle(services: Services, schedule: Schedule, *, now: datetime) -> dict[str, Any] | None:
    totals, batches_applied = services.results.total(schedule.cycle_id)
    plan = json.loads(schedule.plan)
    summary: dict[str, Any] = {
        "cycle_id": schedule.cycle_id,
        "started_at": iso(schedule.started_at),
        "planned_at": iso(schedule.planned_at),
        "finished_at": iso(now),
        **plan,
        "batches_applied": batches_applied,
        **{k: v for k, v in asdict(totals).items() if k != "errors"},
        "errors": int(plan.get("errors", 0)) + totals.errors,
    }
    if schedule.started_at:
        summary["duration_s"] = round((now - schedule.started_at).total_seconds(), 3)
        telemetry.observe("acctsync.cycle_duration_s", summary["duration_s"])
    interval = timedelta(minutes=services.settings.sync_interval_minutes)
    if not services.schedule.finished(schedule, now=now, interval=interval):
        return None
    services.history.add(summary, finished_at=now)
    logger.info("cycle finished", extra={"cycle_id": schedule.cycle_id, **summary})
    return summary


def plan_cycle(services: Services, schedule: Schedule, *, progress: Progress) -> dict[str, Any]:
    """Plan the cycle's next stage: read its changes, enqueue them as batches, then commit
    its delta link. Stages that find nothing to enqueue are passed in the same call."""
    client = services.dataverse()
    requests_before, throttled_before = client.stats.requests, client.stats.throttled
    plan = json.loads(schedule.plan)
    planner = _Planner(services, client, schedule, progress, plan)
    remaining = STAGES[STAGES.index(schedule.stage) + 1 if schedule.stage else 0 :]
    stage = remaining[0]
    with telemetry.span("acctsync.cycle", attributes={"cycle_id": schedule.cycle_id}):
        for stage in remaining:
            batches_before = planner.counts["batches"]
            planner.run(stage)
            if planner.counts["batches"] > batches_before:
                break  # this stage's batches are applied before the next stage is read
    plan = planner.plan()
    plan["dataverse_requests"] = (
        plan.get("dataverse_requests", 0) + client.stats.requests - requests_before
    )
    plan["dataverse_throttled"] = (
        plan.get("dataverse_throttled", 0) + client.stats.throttled - throttled_before
    )
    # Commit only while this heartbeat still holds the lease: a planner whose lease ran out
    # (a stalled process) must not move the cursors under the cycle that took over.
    services.schedule.renew(schedule, now=utcnow(), lease=_lease(services))
    services.cursors.commit(planner.new_links, at=utcnow())
    backfilled(services, planner.backfill)
    services.schedule.planned(schedule, now=utcnow(), stage=stage, plan=plan)
    logger.info("cycle planned", extra={"cycle_id": schedule.cycle_id, "stage": stage, **plan})
    return plan


class _Planner:
    def __init__(
        self,
        services: Services,
        client: DataverseClient,
        schedule: Schedule,
        progress: Progress,
        earlier: dict[str, Any],
    ):
        """`earlier`: the plan of the cycle's stages so far, which this one adds to."""
        self.services = services
        self.client = client
        self.schedule = schedule
        self.progress = progress
        self.queue = services.storage.queue(BATCH_QUEUE)
        self.new_links: dict[str, tuple[str, str]] = {}
        self.earlier = earlier
        self.counts = {
            key: int(earlier.get(key, 0))
            for key in ("accounts_changed", "contacts_changed", "batches", "errors")
        }
        self.modes: dict[str, str] = dict(earlier.get("modes", {}))
        self.columns: dict[str, ColumnType] = {}
        self.backfill: list[str] = []
        self.unreadable: list[str] = []
        # Set for each entity set streamed: the batches' common header, and their packer.
        self.header = Batch(schedule.cycle_id, "", "delta", {})
        self.packer = BatchPacker(0)
        self._renewed = time.monotonic()
        lease = _lease(services)
        # Renew well before the lease runs out, also when a short lease is configured.
        self._renew_every_s = min(LEASE_RENEW_EVERY_S, lease.total_seconds() / 3)

    def run(self, stage: str) -> None:
        if stage == CONTACTS:
            self._stream(CONTACTS, contact_select())
            return
        selection = current_selection(self.services, self.client)
        selection = refresh_readability(self.services, self.client, selection, now=utcnow())
        # Unreadable columns stay in $select (the delta chain goes on) but out of the batches,
        # so their mirrored values are kept rather than blanked by the nulls Dynamics sends.
        self.columns = {k: v for k, v in selection.columns.items() if k not in selection.unreadable}
        self.backfill = [c for c in selection.backfill if c in self.columns]
        self.unreadable = selection.unreadable
        self._stream(ACCOUNTS, account_select(selection.columns), reload=bool(self.backfill))

    def plan(self) -> dict[str, Any]:
        return {
            **self.earlier,
            **self.counts,
            "modes": self.modes,
            "backfill": self.backfill or self.earlier.get("backfill", []),
            "unreadable_fields": self.unreadable or self.earlier.get("unreadable_fields", []),
        }

    def _stream(self, entity_set: str, columns: list[str], *, reload: bool = False) -> None:
        select = ",".join(columns)
        cursor = self.services.cursors.get(entity_set)
        link = cursor.delta_link if cursor and cursor.select == select and not reload else None
        mode: Mode = "delta" if link else ("initial" if cursor is None else "reload")
        try:
            pages = self._first_and_rest(entity_set, columns, link)
        except DeltaTokenExpired:
            logger.warning("delta token of %s expired: full re-load", entity_set)
            mode = "reload"
            pages = self._first_and_rest(entity_set, columns, None)
        self.modes[entity_set] = mode
        self._open(entity_set, mode)
        seen: set[str] | None = set() if mode == "reload" else None
        last: ChangePage | None = None
        for page in pages:
            last = page
            if seen is not None:
                seen.update(str(r.get(_key(entity_set))).lower() for r in page.rows)
            self._enqueue(entity_set, page.rows, page.deleted_ids)
            self.progress.read(entity_set, len(page.rows) + len(page.deleted_ids))
            self._keep_lease()  # slow pages (throttling, retries) must not outlive the lease
        if seen is not None:
            # A re-load sees no deletions: whatever the mirror has and Dynamics no longer does.
            mirror = self.services.accounts if entity_set == ACCOUNTS else self.services.contacts
            gone = [i for i in mirror.ids() if i not in seen]
            self._enqueue(entity_set, [], gone)
        self._close()
        assert last is not None and last.delta_link is not None
        self.new_links[entity_set] = (last.delta_link, select)

    def _open(self, entity_set: str, mode: Mode) -> None:
        """Start packing the changes of one entity set."""
        self.header = Batch(
            self.schedule.cycle_id,
            "",
            mode,
            self.columns if entity_set == ACCOUNTS else {},
            traceparent=telemetry.current_traceparent(),
            backfill=self.backfill if entity_set == ACCOUNTS else [],
            # A first load sends the contacts' memberships grouped by their own partition.
            members_apart=entity_set == CONTACTS and mode == "initial",
        )
        self.packer = BatchPacker(header_budget(self.header))

    def _close(self) -> None:
        """Send what the packer still holds."""
        for packed in self.packer.flush():
            self._send(packed)

    def _first_and_rest(
        self, entity_set: str, columns: list[str], link: str | None
    ) -> Iterator[ChangePage]:
        pages = self.client.changes(entity_set, columns, delta_link=link)
        first = next(pages)  # an expired token fails here, before anything is enqueued

        def chain() -> Iterator[ChangePage]:
            yield first
            yield from pages

        return chain()

    def _enqueue(self, entity_set: str, rows: list[dict[str, Any]], deleted: list[str]) -> None:
        """Hand a page's changes to the packer, and send the batches they fill."""
        if entity_set == ACCOUNTS:
            accounts = [a for r in rows if (a := self._account(r))]
            accounts += [
                AccountChange(id=g, deleted=True)
                for i in deleted
                if (g := self._guid_or_error("account", i))
            ]
            for account in accounts:
                self._add("accounts", bucket(account.id), account.id, account_fragment(account))
            self.counts["accounts_changed"] += len(accounts)
            return
        contacts = [c for r in rows if (c := self._contact(r))]
        contacts += [
            ContactChange(id=g, deleted=True)
            for i in deleted
            if (g := self._guid_or_error("contact", i))
        ]
        for contact in contacts:
            sent = self._add("contacts", bucket(contact.id), contact.id, contact_fragment(contact))
            if sent and self.header.members_apart and (pair := _membership(contact)):
                self._add("members", bucket(pair[0]), contact.id, member_fragment(*pair))
        self.counts["contacts_changed"] += len(contacts)

    def _add(self, kind: Kind, partition: str, record_id: str, fragment: str) -> bool:
        if not self.packer.fits(fragment):
            self.counts["errors"] += 1
            self.services.errors.record(
                entity=kind.removesuffix("s"),
                record_id=record_id,
                operation="read",
                message=f"the record is {len(fragment)} bytes, too large for a queue message",
                cycle_id=self.schedule.cycle_id,
            )
            return False
        full = self.packer.add(kind, partition, fragment)
        if full is not None:
            self._send(full)
        return True

    def _send(self, packed: Packed) -> None:
        number = f"{self.counts['batches'] + 1:06d}"
        header = replace(self.header, batch_id=number)
        self.queue.send_message(
            encode_batch(
                header, accounts=packed.accounts, contacts=packed.contacts, members=packed.members
            )
        )
        self.counts["batches"] += 1
        self.progress.enqueued(1, packed.records)
        self._keep_lease()

    def _keep_lease(self) -> None:
        if time.monotonic() - self._renewed > self._renew_every_s:
            self.services.schedule.renew(self.schedule, now=utcnow(), lease=_lease(self.services))
            self._renewed = time.monotonic()

    def _guid_or_error(self, entity: str, value: Any) -> str | None:
        """Ids from Dataverse become table keys: anything but a GUID is a sync error."""
        try:
            return parse_guid(value)
        except InvalidId as error:
            self._bad_row(entity, value, str(error))
            return None

    def _bad_row(self, entity: str, value: Any, message: str) -> None:
        self.counts["errors"] += 1
        self.services.errors.record(
            entity=entity,
            record_id=repr(value)[:100],
            operation="read",
            message=f"Dataverse sent a row acctsync cannot mirror: {message}",
            cycle_id=self.schedule.cycle_id,
        )

    def _account(self, row: dict[str, Any]) -> AccountChange | None:
        try:
            return AccountChange(
                id=parse_guid(row.get(ACCOUNT_ID)),
                version=_version(row),
                modified_on=row.get("modifiedon"),
                values={c: row.get(web_api_property(c, t)) for c, t in self.columns.items()},
            )
        except ValueError as error:  # InvalidId included
            self._bad_row("account", row.get(ACCOUNT_ID), str(error))
            return None

    def _contact(self, row: dict[str, Any]) -> ContactChange | None:
        parent = row.get(PARENT_CUSTOMER)
        try:
            return ContactChange(
                id=parse_guid(row.get(CONTACT_ID)),
                version=_version(row),
                parent_id=None if parent is None else parse_guid(parent),
                parent_type=row.get(PARENT_TYPE),
                modified_on=row.get("modifiedon"),
                values={c: row.get(c) for c in CONTACT_COLUMNS},
            )
        except ValueError as error:  # InvalidId included
            self._bad_row("contact", row.get(CONTACT_ID), str(error))
            return None


def _membership(contact: ContactChange) -> tuple[str, str] | None:
    """The (account, contact) membership a first load sends apart: a contact whose parent is
    known to be an account, and whose row the apply step will be able to write."""
    if contact.deleted or contact.parent_type != "account" or not contact.parent_id:
        return None
    try:
        contact_row(contact, account_id=contact.parent_id, synced_at=utcnow())
    except UnstorableValue:
        return None  # its batch records the sync error and writes no membership
    return contact.parent_id, contact.id


def _version(row: dict[str, Any]) -> int:
    version = row.get("versionnumber")
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise ValueError(f"versionnumber {version!r} is not a number")
    number = int(version)  # Dataverse sends it as a number or a numeric string
    if number < 0:
        raise ValueError(f"versionnumber {version!r} is negative")
    return number


def _lease(services: Services) -> timedelta:
    return timedelta(seconds=services.settings.lease_seconds)


def _key(entity_set: str) -> str:
    return ACCOUNT_ID if entity_set == ACCOUNTS else CONTACT_ID
