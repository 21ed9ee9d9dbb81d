"""A verify's result, from where its run ended."""

from __future__ import annotations

from datetime import datetime

from shared.state.verify import MAX_SAMPLES, TableVerify, VerifyResult
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
