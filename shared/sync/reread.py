"""TEMPORARY stand-in (task D's branch only) for task C's `reread_and_apply`, with its exact
signature, so that `acctsync verify --repair` can be built and tested before task C merges.
The lead replaces this whole module with task C's at merge; nothing else depends on its
insides. It also clears a wrongly set deletion flag itself, which task A moves into the
appliers.

Re-read ids from Dynamics (plain queries, OR filters of 50 ids) and apply them as a delta
batch of a cycle would, through the appliers; an id Dynamics no longer has is applied as a
deletion.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace

from shared.dataverse.client import ChangePage, DataverseClient
from shared.dataverse.columns import ACCOUNT_ID, CONTACT_ID
from shared.ids import parse_guid
from shared.mirror.records import bucket
from shared.mirror.writes import merge_all
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.sync.batches import encode_batch
from shared.sync.readers import AccountReader, ContactReader, RowErrors, TableReader
from shared.sync.schema import check_columns


@dataclass(frozen=True)
class RereadOutcome:
    entity_set: str
    requested: int
    applied: int
    deleted: int
    unchanged: int
    errors: int
    activities_logged: int
    activities_suppressed: int
    dataverse_requests: int
    failed_ids: tuple[str, ...]


def reread_and_apply(
    services: Services,
    client: DataverseClient,
    entity_set: str,
    ids: Collection[str],
    *,
    origin: str,
) -> RereadOutcome:
    before = client.stats.requests
    cycle_id = f"reread-{uuid.uuid4().hex[:12]}"
    columns = check_columns(services, client)
    errors = RowErrors(services.errors, cycle_id)
    reader: TableReader
    if entity_set == "accounts":
        reader, key = AccountReader(columns.account, errors, columns.sync_filter), ACCOUNT_ID
    else:
        reader, key = ContactReader(columns.contact, errors), CONTACT_ID
    wanted = sorted({parse_guid(i) for i in ids})
    rows = []
    for start in range(0, len(wanted), 50):
        where = " or ".join(f"{key} eq {i}" for i in wanted[start : start + 50])
        for page in client.rows(entity_set, reader.select, where=where):
            rows += page.rows
    found = {str(row[key]).lower() for row in rows}
    _clear_deletion_flags(services, entity_set, found)
    gone = [i for i in wanted if i not in found]
    header = reader.header(cycle_id, LoadMode.DELTA, 0)
    fragments = list(reader.fragments(ChangePage(rows, gone, None, "")))
    body = encode_batch(
        replace(header, batch_id="reread"),
        accounts=[f.text for f in fragments if f.kind == "accounts"],
        contacts=[f.text for f in fragments if f.kind == "contacts"],
        members=[],
    )
    result = apply_batch(services, body)
    applied = result.accounts_applied + result.contacts_applied
    return RereadOutcome(
        entity_set,
        len(wanted),
        applied - result.removed,
        result.removed,
        result.skipped,
        result.errors + errors.count,
        result.activities_logged,
        result.activities_suppressed,
        client.stats.requests - before,
        (),
    )


def _clear_deletion_flags(services: Services, entity_set: str, live: set[str]) -> None:
    records = services.accounts if entity_set == "accounts" else services.contacts
    flagged = [e for e in records.get_many(live).values() if e.get("is_deleted")]
    merge_all(
        records.table,
        [
            {"PartitionKey": bucket(str(e["RowKey"])), "RowKey": e["RowKey"], "is_deleted": False}
            for e in flagged
        ],
    )
    if entity_set == "contacts":
        services.members.add_all(
            (str(e["accountid"]), str(e["RowKey"])) for e in flagged if e.get("accountid")
        )
