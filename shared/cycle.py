"""The sync cycle: a heartbeat decides, under a lease, whether a cycle starts or finishes.

A cycle reads account and contact changes from the stored delta links (a full load when there
are none), packs them into batches, enqueues them, and only then commits the new delta links:
a crash before the commit means the next cycle re-reads the same changes, which the apply step
ignores as already applied. The cycle finishes when every batch has left the queue, and the
next one starts SYNC_INTERVAL_MINUTES later.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared import telemetry
from shared.batches import AccountChange, Batch, ContactChange, Mode, Oversized, pack
from shared.columns import (
    ACCOUNT_ID,
    CONTACT_COLUMNS,
    CONTACT_ID,
    PARENT_CUSTOMER,
    PARENT_TYPE,
    account_select,
    contact_select,
)
from shared.dataverse import ChangePage, DataverseClient, DeltaTokenExpired
from shared.fields import backfilled, current_selection, refresh_readability
from shared.ids import InvalidId, parse_guid
from shared.mapping import ColumnType, web_api_property
from shared.mirror import bucket
from shared.services import Services
from shared.state import Schedule, iso, utcnow
from shared.storage import BATCH_QUEUE

logger = logging.getLogger(__name__)

LEASE_RENEW_EVERY_S = 60.0
RETRY_AFTER_FAILURE = timedelta(minutes=1)
ACCOUNTS, CONTACTS = "accounts", "contacts"


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
    try:
        plan = plan_cycle(services, started, progress=progress or _default_progress)
    except Exception:
        # Give the lease back so the next heartbeat retries instead of waiting for it to
        # expire; what was enqueued is applied anyway, and the cursors did not move.
        services.schedule.abandon(started, now=utcnow(), retry_in=RETRY_AFTER_FAILURE)
        raise
    return Heartbeat("planned", started.cycle_id, summary=plan)


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
    """Read the changes, enqueue them as batches, then commit the delta links."""
    client = services.dataverse()
    requests_before, throttled_before = client.stats.requests, client.stats.throttled
    planner = _Planner(services, client, schedule, progress)
    with telemetry.span("acctsync.cycle", attributes={"cycle_id": schedule.cycle_id}):
        plan = planner.run()
    plan["dataverse_requests"] = client.stats.requests - requests_before
    plan["dataverse_throttled"] = client.stats.throttled - throttled_before
    # Commit only while this heartbeat still holds the lease: a planner whose lease ran out
    # (a stalled process) must not move the cursors under the cycle that took over.
    services.schedule.renew(schedule, now=utcnow(), lease=_lease(services))
    services.cursors.commit(planner.new_links, at=utcnow())
    backfilled(services, planner.backfill)
    services.schedule.planned(schedule, now=utcnow(), plan=plan)
    logger.info("cycle planned", extra={"cycle_id": schedule.cycle_id, **plan})
    return plan


class _Planner:
    def __init__(
        self, services: Services, client: DataverseClient, schedule: Schedule, progress: Progress
    ):
        self.services = services
        self.client = client
        self.schedule = schedule
        self.progress = progress
        self.queue = services.storage.queue(BATCH_QUEUE)
        self.new_links: dict[str, tuple[str, str]] = {}
        self.counts = {"accounts_changed": 0, "contacts_changed": 0, "batches": 0, "errors": 0}
        self.modes: dict[str, str] = {}
        self.columns: dict[str, ColumnType] = {}
        self.backfill: list[str] = []
        self._renewed = time.monotonic()
        lease = _lease(services)
        # Renew well before the lease runs out, also when a short lease is configured.
        self._renew_every_s = min(LEASE_RENEW_EVERY_S, lease.total_seconds() / 3)

    def run(self) -> dict[str, Any]:
        selection = current_selection(self.services, self.client)
        selection = refresh_readability(self.services, self.client, selection, now=utcnow())
        # Unreadable columns stay in $select (the delta chain goes on) but out of the batches,
        # so their mirrored values are kept rather than blanked by the nulls Dynamics sends.
        self.columns = {k: v for k, v in selection.columns.items() if k not in selection.unreadable}
        self.backfill = [c for c in selection.backfill if c in self.columns]
        self._stream(ACCOUNTS, account_select(selection.columns), reload=bool(self.backfill))
        self._stream(CONTACTS, contact_select())
        return {
            **self.counts,
            "modes": self.modes,
            "backfill": self.backfill,
            "unreadable_fields": selection.unreadable,
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
        seen: set[str] | None = set() if mode == "reload" else None
        last: ChangePage | None = None
        for page in pages:
            last = page
            if seen is not None:
                seen.update(str(r.get(_key(entity_set))).lower() for r in page.rows)
            self._enqueue(entity_set, mode, page.rows, page.deleted_ids)
            self.progress.read(entity_set, len(page.rows) + len(page.deleted_ids))
            self._keep_lease()  # slow pages (throttling, retries) must not outlive the lease
        if seen is not None:
            # A re-load sees no deletions: whatever the mirror has and Dynamics no longer does.
            mirror = self.services.accounts if entity_set == ACCOUNTS else self.services.contacts
            gone = [i for i in mirror.ids() if i not in seen]
            self._enqueue(entity_set, mode, [], gone)
        assert last is not None and last.delta_link is not None
        self.new_links[entity_set] = (last.delta_link, select)

    def _first_and_rest(
        self, entity_set: str, columns: list[str], link: str | None
    ) -> Iterator[ChangePage]:
        pages = self.client.changes(entity_set, columns, delta_link=link)
        first = next(pages)  # an expired token fails here, before anything is enqueued

        def chain() -> Iterator[ChangePage]:
            yield first
            yield from pages

        return chain()

    def _enqueue(
        self, entity_set: str, mode: Mode, rows: list[dict[str, Any]], deleted: list[str]
    ) -> None:
        entity = "account" if entity_set == ACCOUNTS else "contact"
        deleted = [g for i in deleted if (g := self._guid_or_error(entity, i))]
        if entity_set == ACCOUNTS:
            accounts = [a for r in rows if (a := self._account(r))] + [
                AccountChange(id=i, deleted=True) for i in deleted
            ]
            accounts.sort(key=lambda c: bucket(c.id))
            batches = pack(
                cycle_id=self.schedule.cycle_id,
                first_batch_number=self.counts["batches"] + 1,
                mode=mode,
                columns=self.columns,
                backfill=self.backfill,
                accounts=accounts,
                traceparent=telemetry.current_traceparent(),
            )
            self.counts["accounts_changed"] += len(accounts)
        else:
            contacts = [c for r in rows if (c := self._contact(r))] + [
                ContactChange(id=i, deleted=True) for i in deleted
            ]
            contacts.sort(key=lambda c: bucket(c.id))
            batches = pack(
                cycle_id=self.schedule.cycle_id,
                first_batch_number=self.counts["batches"] + 1,
                mode=mode,
                columns=self.columns,
                contacts=contacts,
                traceparent=telemetry.current_traceparent(),
            )
            self.counts["contacts_changed"] += len(contacts)
        for item in batches:
            if isinstance(item, Oversized):
                self.counts["errors"] += 1
                self.services.errors.record(
                    entity=item.entity,
                    record_id=item.id,
                    operation="read",
                    message=f"the record is {item.size} bytes, too large for a queue message",
                    cycle_id=self.schedule.cycle_id,
                )
                continue
            self._send(item)

    def _send(self, batch: Batch) -> None:
        self.queue.send_message(batch.encode())
        self.counts["batches"] += 1
        self.progress.enqueued(1, len(batch.accounts) + len(batch.contacts))
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
