"""Repair: the drifted ids re-read from Dynamics and applied the way a cycle would (a missed
update logs its Change Data Value activities, a wrong deletion flag is cleared without any, a
record gone from Dynamics is flagged deleted), contacts before accounts as a cycle does; then
those ids are compared again, one by one."""

from __future__ import annotations

from shared.dataverse.client import DataverseClient
from shared.mirror.records import bucket
from shared.mirror.writes import merge_all
from shared.services import Services
from shared.state.verify import Drift, DriftKind
from shared.sync.apply.rows import version_property
from shared.sync.reread import reread_and_apply
from shared.verify.classify import classify
from shared.verify.dynamics import read_ids
from shared.verify.progress import TableRun, VerifyRun

# Ids one heartbeat's unit of repair re-reads and checks again (its position is kept after).
REPAIR_CHUNK = 500
REWOUND = frozenset({DriftKind.STALE, DriftKind.WRONG_ACCOUNT, DriftKind.VALUES})


def repair_chunk(services: Services, client: DataverseClient, run: VerifyRun) -> bool:
    """Repair the next chunk of drift (the tables in the run's order); False when none is
    left."""
    for table in run.tables:
        position = run.repair_position.get(table.entity_set, 0)
        chunk = table.drift[position : position + REPAIR_CHUNK]
        if not chunk:
            continue
        ids = [d.id for d in chunk]
        _rewind(services, table, chunk)
        reread_and_apply(services, client, table.entity_set, ids, origin=f"verify {run.request.id}")
        left = recheck(services, client, table, ids)
        run.drift_left += left
        run.repaired += len(ids) - len(left)
        run.repair_position[table.entity_set] = position + len(chunk)
        return True
    return False


def _rewind(services: Services, table: TableRun, chunk: list[Drift]) -> None:
    """The appliers skip a change whose version the mirror holds already: a row wrong at
    Dynamics' own version (another account, other values, a version past Dynamics') gets
    version 0, so the re-read applies it whole, logging what its values change."""
    records = services.accounts if table.entity_set == "accounts" else services.contacts
    merge_all(
        records.table,
        [
            {"PartitionKey": bucket(d.id), "RowKey": d.id, "version": version_property(0)}
            for d in chunk
            if d.kind in REWOUND
        ],
    )


def recheck(
    services: Services, client: DataverseClient, table: TableRun, ids: list[str]
) -> list[Drift]:
    """The drift left among `ids`: each compared again, Dynamics' row against the mirror's."""
    spec = table.spec
    records = services.accounts if spec.entity_set == "accounts" else services.contacts
    dynamics = read_ids(client, spec, ids)
    mirror = {i: spec.mirror_row(e) for i, e in records.get_many(ids).items()}
    return [
        Drift(spec.entity_set, i, kind)
        for i in ids
        if (kind := classify(dynamics.get(i), mirror.get(i))) is not None
    ]
