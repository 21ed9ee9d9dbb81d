"""Repair: the drifted ids re-read from Dynamics and applied the way a cycle would (a missed
update logs its Change Data Value activities, a wrong deletion flag is cleared without any, a
record gone from Dynamics is flagged deleted), contacts before accounts as a cycle does; then
those ids are compared again, one by one."""

from __future__ import annotations

from shared.dataverse.client import DataverseClient
from shared.services import Services
from shared.state.verify import Drift, DriftKind
from shared.sync.reread import reread_and_apply
from shared.verify.classify import classify
from shared.verify.dynamics_reads import read_ids
from shared.verify.progress import TableRun, VerifyRun

# Ids one heartbeat's unit of repair re-reads and checks again (its position is kept after).
REPAIR_CHUNK = 500
APPLIED_WHOLE = frozenset({DriftKind.STALE, DriftKind.WRONG_ACCOUNT, DriftKind.VALUES})


def repair_chunk(services: Services, client: DataverseClient, run: VerifyRun) -> bool:
    """Repair the next chunk of drift (the tables in the run's order); False when none is
    left."""
    for table in run.tables:
        position = run.repair_position.get(table.entity_set, 0)
        chunk = table.drift[position : position + REPAIR_CHUNK]
        if not chunk:
            continue
        ids = [d.id for d in chunk]
        # A row wrong at Dynamics' own version (another account, other values, a version past
        # Dynamics') is applied whole: the appliers would skip a version the mirror holds.
        whole = [d.id for d in chunk if d.kind in APPLIED_WHOLE]
        origin = f"verify {run.request.id}"
        reread_and_apply(services, client, table.entity_set, ids, origin=origin, whole=whole)
        left = recheck(services, client, table, ids)
        run.drift_left += left
        run.repaired += len(ids) - len(left)
        run.repair_position[table.entity_set] = position + len(chunk)
        return True
    return False


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
