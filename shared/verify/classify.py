"""Which kind of drift one record is, from what each side holds of it."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping

from shared.state.verify import Drift, DriftKind
from shared.verify.compared_rows import DynamicsRow, MirrorRow


def classify(dynamics: DynamicsRow | None, mirror: MirrorRow | None) -> DriftKind | None:
    """The drift of one record (None: the two agree). `dynamics` None: Dynamics does not
    have the record; `mirror` None: the mirror never had it."""
    if dynamics is None:
        # Gone from Dynamics: the mirror keeps it, flagged deleted.
        return DriftKind.NOT_DELETED if mirror is not None and not mirror.deleted else None
    if dynamics.filtered:
        # Kept out by the sync filter: never mirrored, or marked and left as it was.
        if mirror is not None and mirror.compared:
            return DriftKind.STALE  # the change that said No was missed
        return None
    if mirror is None:
        return DriftKind.MISSING
    if mirror.deleted:
        return DriftKind.WRONGLY_DELETED
    if mirror.filtered or mirror.version != dynamics.version:
        return DriftKind.STALE
    if mirror.account != dynamics.account:
        return DriftKind.WRONG_ACCOUNT
    if dynamics.values is not None and differing_values(dynamics, mirror):
        return DriftKind.VALUES
    return None


def differing_values(dynamics: DynamicsRow, mirror: MirrorRow) -> list[str]:
    """Columns whose values differ, but those edited locally since Dynamics last changed the
    account: the next change in Dynamics overwrites those, until then they are no drift."""
    theirs = dynamics.values or {}
    ours = mirror.values or {}
    return [
        column
        for column in theirs
        if column not in mirror.local and theirs.get(column) != ours.get(column)
    ]


def drift_of(
    entity_set: str,
    dynamics: Mapping[str, DynamicsRow],
    mirror: Mapping[str, MirrorRow],
    *,
    pending: Collection[str],
) -> Iterator[Drift]:
    """The drift among the records of both sides (ids in `pending` are left out), by id."""
    for record_id in sorted(dynamics.keys() | mirror.keys()):
        if record_id in pending:
            continue
        kind = classify(dynamics.get(record_id), mirror.get(record_id))
        if kind is not None:
            yield Drift(entity_set, record_id, kind)
