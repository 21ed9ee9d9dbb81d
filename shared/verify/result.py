"""A verify's result, from where its run ended."""

from __future__ import annotations

from datetime import datetime

from shared.state.verify import MAX_SAMPLES, DriftKind, TableVerify, VerifyResult
from shared.verify.progress import VerifyRun


def result_of(run: VerifyRun, *, finished_at: datetime, error: str | None = None) -> VerifyResult:
    tables = tuple(
        TableVerify(t.entity_set, t.checked, t.pending_count, dict(t.by_kind)) for t in run.tables
    )
    kept = [d for t in run.tables for d in t.drift]
    found = sum(t.drift for t in tables)
    if run.request.repair and error is None:
        # What was re-checked after repair, and what was found but not kept to repair.
        left = len(run.drift_left) + found - len(kept)
    else:
        left = found
    return VerifyResult(
        id=run.request.id,
        trigger=run.request.trigger,
        started_at=run.started_at,
        finished_at=finished_at,
        deep=run.request.deep,
        repair=run.request.repair,
        tables=tables,
        samples=tuple(kept[:MAX_SAMPLES]),
        repaired=run.repaired,
        drift_left=left,
        dataverse_requests=run.requests,
        error=error,
    )


# Each kind of drift as marketing-ops people would say it: (one record, several records).
KIND_WORDS = {
    DriftKind.MISSING: ("record missing from the mirror", "records missing from the mirror"),
    DriftKind.WRONGLY_DELETED: (
        "record flagged deleted in the mirror but live in Dynamics",
        "records flagged deleted in the mirror but live in Dynamics",
    ),
    DriftKind.NOT_DELETED: (
        "record deleted in Dynamics but live in the mirror",
        "records deleted in Dynamics but live in the mirror",
    ),
    DriftKind.STALE: (
        "record older in the mirror than in Dynamics",
        "records older in the mirror than in Dynamics",
    ),
    DriftKind.WRONG_ACCOUNT: (
        "contact under another account than in Dynamics",
        "contacts under another account than in Dynamics",
    ),
    DriftKind.VALUES: (
        "record with other values than Dynamics",
        "records with other values than Dynamics",
    ),
}


def drift_in_words(result: VerifyResult) -> list[str]:
    """The drift a verify found, one phrase per kind it found: "3 records missing from the
    mirror"."""
    phrases = []
    for kind, count in result.by_kind.items():
        if count:
            one, several = KIND_WORDS[DriftKind(kind)]
            phrases.append(f"{count:,} {one if count == 1 else several}")
    return phrases
