"""Read named records from Dynamics again and apply them as a cycle would.

What retrying a sync error and repairing drift share. The records are read with a plain query
(`$filter=<key> eq <id> or ...`, GROUP_SIZE ids a request) and the same columns, sync filter
and readers as the cycle; no delta link is read or moved. Each group is applied in this process
as a delta batch of its own, through the cycle's appliers: a change the mirror missed logs its
Change Data Value activities (threshold rule included), memberships and the change feed are
written, and an id Dynamics no longer has is flagged deleted when the mirror still has it live.
Contacts before accounts, as the cycle does, is the caller's order to keep.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace

from shared.dataverse.client import ChangePage, DataverseClient
from shared.dataverse.columns import ACCOUNT_ID, CONTACT_ID
from shared.ids import parse_guid
from shared.services import Services
from shared.state.results import BatchResult
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_changes
from shared.sync.batches import AccountChange, Batch, ContactChange
from shared.sync.column_access import check_columns
from shared.sync.readers import AccountReader, ContactReader, RowErrors
from shared.times import utcnow

logger = logging.getLogger(__name__)

# Ids a request asks for: 50 `accountid eq <guid>` terms are about 3 KB of URL, far below the
# 32 KB a Web API GET may have, and as many rows as fit in any page.
GROUP_SIZE = 50
PRIMARY_KEYS = {"accounts": ACCOUNT_ID, "contacts": CONTACT_ID}


@dataclass(frozen=True)
class RereadOutcome:
    entity_set: str  # "accounts" | "contacts"
    requested: int  # ids asked for
    applied: int  # rows written (new or updated, incl. a deletion flag cleared)
    deleted: int  # ids Dynamics no longer has, flagged deleted in the mirror now
    unchanged: int  # nothing to write (the sync filter's accounts included)
    errors: int  # rows refused (unstorable etc.), recorded as sync errors
    activities_logged: int
    activities_suppressed: int
    dataverse_requests: int
    failed_ids: tuple[str, ...]  # ids that could not be applied (with a sync error each)

    @classmethod
    def of(
        cls,
        entity_set: str,
        requested: int,
        total: BatchResult,
        *,
        errors: int,
        requests: int,
        failed: list[str],
    ) -> RereadOutcome:
        """The outcome of applying `requested` ids, from the batches' summed result; `errors`
        rows the reader refused besides."""
        return cls(
            entity_set=entity_set,
            requested=requested,
            applied=total.accounts_applied + total.contacts_applied - total.removed,
            deleted=total.removed,
            unchanged=total.skipped + total.filtered,
            errors=total.errors + errors,
            activities_logged=total.activities_logged,
            activities_suppressed=total.activities_suppressed,
            dataverse_requests=requests,
            failed_ids=tuple(dict.fromkeys(failed)),
        )


def reread_and_apply(
    services: Services,
    client: DataverseClient,
    entity_set: str,
    ids: Collection[str],
    *,
    origin: str,
    whole: Collection[str] = (),
) -> RereadOutcome:
    """Re-read `ids` of one table from Dynamics and apply them; `origin` names the run in the
    sync errors it records (cycle id `<origin>-<uuid>`). ValueError for an id that is not a
    GUID or a table other than accounts and contacts, before anything is read."""
    if entity_set not in PRIMARY_KEYS:
        raise ValueError(f"{entity_set!r} is not one of {sorted(PRIMARY_KEYS)}")
    wanted = list(dict.fromkeys(parse_guid(i) for i in ids))
    requests_before = client.stats.requests
    cycle_id = f"{origin}-{uuid.uuid4().hex}"
    errors = RowErrors(services.errors, cycle_id)
    total = BatchResult()
    failed: list[str] = []
    if wanted:
        reader = _reader(services, client, entity_set, errors)
        # Read from now on: a record flagged deleted that comes back is one Dynamics has.
        header = replace(reader.header(cycle_id, LoadMode.DELTA, generation=0), read_at=utcnow())
        for number, start in enumerate(range(0, len(wanted), GROUP_SIZE), start=1):
            group = wanted[start : start + GROUP_SIZE]
            batch = _batch(header, number)
            failed += _apply_group(services, client, reader, batch, group, total, whole=whole)
    requests = client.stats.requests - requests_before
    outcome = RereadOutcome.of(
        entity_set, len(wanted), total, errors=errors.count, requests=requests, failed=failed
    )
    logger.info(
        "re-read %d %s: %d applied, %d deleted, %d failed",
        outcome.requested,
        entity_set,
        outcome.applied,
        outcome.deleted,
        len(outcome.failed_ids),
    )
    return outcome


def _reader(
    services: Services, client: DataverseClient, entity_set: str, errors: RowErrors
) -> AccountReader | ContactReader:
    """The cycle's reader of the table: its columns, sync filter and checks."""
    columns = check_columns(services, client)
    if entity_set == "accounts":
        return AccountReader(columns.account, errors, columns.sync_filter)
    return ContactReader(columns.contact, errors)


def _read(
    client: DataverseClient, entity_set: str, select: list[str], ids: list[str]
) -> ChangePage:
    """One request for a group of ids: the rows Dynamics has, and the ids it no longer has as
    deletions (a plain query cannot say why a row is missing; gone is all it can be)."""
    key = PRIMARY_KEYS[entity_set]
    where = " or ".join(f"{key} eq {i}" for i in ids)
    rows = [
        row
        for page in client.rows(entity_set, select, where=where, page_size=GROUP_SIZE)
        for row in page.rows
    ]
    seen = {str(row.get(key, "")).lower() for row in rows}
    return ChangePage(rows, [i for i in ids if i not in seen], None, None)


def _apply_group(
    services: Services,
    client: DataverseClient,
    reader: AccountReader | ContactReader,
    header: Batch,
    ids: list[str],
    total: BatchResult,
    *,
    whole: Collection[str],
) -> list[str]:
    """Read and apply one group of ids, adding to `total`; returns the ids that failed."""
    page = _read(client, reader.entity_set, reader.select, ids)
    changes: list[AccountChange | ContactChange] = [*reader.changes(page)]
    batch = replace(
        header,
        accounts=[c for c in changes if isinstance(c, AccountChange)],
        contacts=[c for c in changes if isinstance(c, ContactChange)],
    )
    context = apply_changes(services, batch, queued=False, whole=whole)
    total.add(context.result)
    # A row Dataverse sent that the reader could not take is a sync error already.
    unread = sorted(set(ids) - {c.id for c in changes})
    return unread + context.refused


def _batch(header: Batch, number: int) -> Batch:
    """The header of one group's delta batch: the cycle's reader gives the columns."""
    return replace(header, batch_id=f"reread{number}")
