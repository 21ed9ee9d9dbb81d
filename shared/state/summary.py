"""A finished cycle's summary: what `acctsync cycle` prints, the history keeps and status lists.

Typed here, so a renamed field fails mypy; `to_json` gives the JSON every reader outside the
process sees (the history row, the CLI, `/api/sync/status`), with the same keys and values as
ever, and `from_json` reads any row the history holds, a field older versions did not write
taking its default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from shared.state.results import ChangeLag, CycleStatus, CycleTotals
from shared.state.schedule import Failure, LoadMode
from shared.times import iso, parse_iso


@dataclass(frozen=True)
class StageSummary:
    """The applied batches of one stage of a cycle (contacts, contacts_sweep, accounts,
    accounts_sweep); the status's model of a stage too, so its JSON is its fields."""

    stage: str
    table: str
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    batches: int
    new: int
    updated: int
    deleted: int
    failed: int
    skipped: int
    activities_logged: int
    activities_suppressed: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageSummary:
        duration = data.get("duration_s")
        return cls(
            stage=str(data.get("stage", "")),
            table=str(data.get("table", "")),
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
            duration_s=float(duration) if duration is not None else None,
            **{name: int(data.get(name, 0)) for name in _STAGE_COUNTS},
        )


# The order a cycle's stages run in (shared/state/schedule.py Step).
STAGE_ORDER = ("contacts", "contacts_sweep", "accounts", "accounts_sweep")


def stage_summaries(totals: CycleTotals, started_at: datetime | None) -> tuple[StageSummary, ...]:
    """One row per stage that applied batches: the stages run one after another, so each
    starts when the one before it ended (the first when the cycle started)."""
    rows: list[StageSummary] = []
    begun = started_at
    for name in sorted(totals.stages, key=_stage_rank):
        stage = totals.stages[name]
        result, ended = stage.result, stage.last_applied_at
        applied = result.accounts_applied + result.contacts_applied
        rows.append(
            StageSummary(
                stage=name,
                table=name.removesuffix("_sweep"),
                started_at=iso(begun),
                ended_at=iso(ended),
                duration_s=round((ended - begun).total_seconds(), 3) if begun and ended else None,
                batches=stage.batches,
                new=result.added,
                updated=applied - result.added - result.removed,
                deleted=result.removed + result.deleted,
                failed=result.errors,
                skipped=result.skipped,
                activities_logged=result.activities_logged,
                activities_suppressed=result.activities_suppressed,
            )
        )
        begun = ended or begun
    return tuple(rows)


def _stage_rank(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


_STAGE_COUNTS = (
    "batches",
    "new",
    "updated",
    "deleted",
    "failed",
    "skipped",
    "activities_logged",
    "activities_suppressed",
)


@dataclass(frozen=True)
class LagSummary:
    """How long after their change in Dynamics the cycle's rows reached the mirror."""

    rows: int = 0
    mean_s: float | None = None
    max_s: float = 0.0

    @classmethod
    def of(cls, lag: ChangeLag) -> LagSummary:
        mean = round(lag.total_s / lag.count, 3) if lag.count else None
        return cls(lag.count, mean, round(lag.max_s, 3))

    def to_json(self) -> dict[str, object]:
        return {"rows": self.rows, "mean_s": self.mean_s, "max_s": self.max_s}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LagSummary:
        mean = data.get("mean_s")
        return cls(
            int(data.get("rows", 0)),
            float(mean) if mean is not None else None,
            float(data.get("max_s", 0.0)),
        )


@dataclass(frozen=True)
class CycleSummary:
    """What a finished cycle did. `failure` is set when its planning failed; `duration_s`
    when it knew its start (both absent from the JSON otherwise, as they always were)."""

    cycle_id: str
    status: CycleStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # What planning read: changes per table, at what cost, how each table was read, which columns.
    accounts_changed: int = 0
    contacts_changed: int = 0
    dataverse_requests: int = 0
    dataverse_throttled: int = 0
    planning_heartbeats: int = 0
    modes: Mapping[str, LoadMode] = field(default_factory=dict)
    restarted: Mapping[str, str] = field(default_factory=dict)  # table: why it started over
    backfill: tuple[str, ...] = ()
    unreadable_fields: tuple[str, ...] = ()
    batches: int = 0
    batches_applied: int = 0
    # The queue was empty: a batch not applied went to the poison queue, whether or not its
    # last attempt (killed, or unable to write) recorded it.
    batches_poisoned: int = 0
    batches_missing: int = 0
    missing_batches: tuple[str, ...] = ()  # the first MISSING_NAMED of them
    sweeps_skipped: Mapping[str, str] = field(default_factory=dict)  # table: why
    accounts_applied: int = 0
    contacts_applied: int = 0
    skipped: int = 0
    deleted: int = 0
    accounts_filtered: int = 0
    resync: str | None = None
    resync_refreshed: int = 0
    activities_logged: int = 0
    activities_suppressed: int = 0
    errors: int = 0
    stages: tuple[StageSummary, ...] = ()
    change_lag_s: LagSummary = field(default_factory=LagSummary)
    failure: Failure | None = None
    duration_s: float | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "cycle_id": self.cycle_id,
            "status": self.status.value,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            **{name: getattr(self, name) for name in _COUNTS_BEFORE_LISTS},
            "missing_batches": list(self.missing_batches),
            "sweeps_skipped": dict(self.sweeps_skipped),
            **{name: getattr(self, name) for name in _RESULT_COUNTS},
            "resync": self.resync,
            **{name: getattr(self, name) for name in _ACTIVITY_COUNTS},
            "modes": {name: mode.value for name, mode in self.modes.items()},
            "restarted": dict(self.restarted),
            "backfill": list(self.backfill),
            "unreadable_fields": list(self.unreadable_fields),
            **{name: getattr(self, name) for name in _PLANNING_COUNTS},
            "stages": [stage.to_json() for stage in self.stages],
            "change_lag_s": self.change_lag_s.to_json(),
        }
        if self.failure is not None:
            data["failure"] = self.failure.to_dict()
        if self.duration_s is not None:
            data["duration_s"] = self.duration_s
        return data

    def to_text(self) -> str:
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CycleSummary:
        """A summary as any version stored it: what it did not write takes its default."""
        counts = _COUNTS_BEFORE_LISTS + _RESULT_COUNTS + _ACTIVITY_COUNTS + _PLANNING_COUNTS
        duration = data.get("duration_s")
        return cls(
            cycle_id=str(data.get("cycle_id", "")),
            status=CycleStatus(data.get("status", CycleStatus.SUCCEEDED)),
            started_at=_moment(data.get("started_at")),
            finished_at=_moment(data.get("finished_at")),
            missing_batches=tuple(data.get("missing_batches") or ()),
            sweeps_skipped=dict(data.get("sweeps_skipped") or {}),
            resync=data.get("resync") or None,
            modes={name: LoadMode(mode) for name, mode in (data.get("modes") or {}).items()},
            restarted=dict(data.get("restarted") or {}),
            backfill=tuple(data.get("backfill") or ()),
            unreadable_fields=tuple(data.get("unreadable_fields") or ()),
            stages=tuple(StageSummary.from_json(s) for s in data.get("stages") or ()),
            change_lag_s=LagSummary.from_json(data.get("change_lag_s") or {}),
            failure=Failure.from_dict(data["failure"]) if data.get("failure") else None,
            duration_s=float(duration) if duration is not None else None,
            **{name: int(data.get(name, 0)) for name in counts},
        )

    @classmethod
    def from_text(cls, text: str) -> CycleSummary:
        return cls.from_json(json.loads(text))


# The integer fields, in the order the JSON has always listed them between the others.
_COUNTS_BEFORE_LISTS = (
    "accounts_changed",
    "contacts_changed",
    "batches",
    "batches_applied",
    "batches_poisoned",
    "batches_missing",
)
_RESULT_COUNTS = ("accounts_applied", "contacts_applied", "skipped", "deleted", "accounts_filtered")
_ACTIVITY_COUNTS = ("resync_refreshed", "activities_logged", "activities_suppressed", "errors")
_PLANNING_COUNTS = ("dataverse_requests", "dataverse_throttled", "planning_heartbeats")


def _moment(text: str | None) -> datetime | None:
    return parse_iso(text) if text else None
