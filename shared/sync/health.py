"""The health verdict, decided from plain facts (no storage): what status, the console and
`acctsync validate` say about the sync, worst first: the host is down (no heartbeat), the sync
is stalled (a failure that needs someone, a stage making no progress, no cycle succeeding),
batches wait on a stopped worker (they come back by themselves), and only then healthy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.state.liveness import Beat, Hold
from shared.state.schedule import Failure
from shared.times import iso

# How long past the interval a sync may go without a cycle finishing before it is called
# stalled: room for a few heartbeats, retries and a long-ish cycle.
STALLED_MARGIN = timedelta(minutes=15)
# A heartbeat missed twice is not a slow one: the host is down. The slack covers a heartbeat
# that takes a few seconds itself (the local host beats again a period after one ends).
MISSED_BEATS = 2.0
BEAT_SLACK_S = 5.0
# A worker that has not renewed its messages for this many renewals has stopped.
MISSED_RENEWALS = 3.0
# A stage with batches queued and none applied for this long is stuck. Longer than a crashed
# Functions host keeps its batches invisible (10 minutes), so a crash alone reads as
# "recovering", not "stalled".
NO_PROGRESS = timedelta(minutes=12)
# Batch ids a held-batches reason names at most.
NAMED = 5


class Verdict(StrEnum):
    HEALTHY = "healthy"
    RECOVERING = "recovering"  # batches held by a stopped worker come back by themselves
    STALLED = "stalled"
    HOST_DOWN = "host_down"


_RANK = {Verdict.HEALTHY: 0, Verdict.RECOVERING: 1, Verdict.STALLED: 2, Verdict.HOST_DOWN: 3}

HOST_DOWN_FIX = (
    "start the host: `make run` or `acctsync run` locally; in Azure, check that the Function "
    "App runs and lists its functions (Application Insights -> exceptions)"
)


@dataclass(frozen=True)
class HealthFacts:
    """What the verdict is decided from; gathered by shared/sync/status.py."""

    now: datetime
    interval: timedelta
    running: bool  # a cycle is under way
    stage: str | None  # "applying contacts", "planning accounts"
    cycle_started: bool  # a cycle has ever run
    succeeded_at: datetime | None
    failures_in_a_row: int
    failing: Failure | None  # the failure the running or last cycles keep hitting
    blamed: Failure | None  # the failure whose fix to offer
    running_failed: bool  # the running cycle's planning failed
    moved_at: datetime | None  # the running cycle's last planned page or applied batch
    backlog: int
    beat: Beat | None
    # A heartbeat planning for minutes renews the cycle lease instead of beating.
    lease_renewed_at: datetime | None = None
    lease_renew_every_s: float = 20.0
    holds: tuple[Hold, ...] = ()
    invisible: int = 0  # queued batches no worker can take now (held, alive or not)


@dataclass(frozen=True)
class HeldBatches:
    """Batches a stopped worker holds invisible, and when they come back."""

    worker: str
    back_at: datetime
    cycle_id: str
    batch_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "back_at": iso(self.back_at),
            "cycle_id": self.cycle_id,
            "batches": list(self.batch_ids),
        }


@dataclass(frozen=True)
class Health:
    verdict: Verdict
    reasons: tuple[str, ...]
    fix: str | None
    last_success_at: datetime | None
    stalled_after: timedelta
    heartbeat_at: datetime | None = None
    heartbeat_age_s: float | None = None
    held: tuple[HeldBatches, ...] = field(default=())
    no_progress_s: float | None = None

    @property
    def why(self) -> str | None:
        return "; ".join(self.reasons) or None

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "why": self.why,
            "fix": self.fix,
            "last_success_at": iso(self.last_success_at),
            "stalled_after_s": self.stalled_after.total_seconds(),
            "reasons": list(self.reasons),
            "heartbeat_at": iso(self.heartbeat_at),
            "heartbeat_age_s": self.heartbeat_age_s,
            "held_batches": [h.to_json() for h in self.held],
            "no_progress_s": self.no_progress_s,
        }


@dataclass
class _Findings:
    verdict: Verdict = Verdict.HEALTHY
    reasons: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    def add(self, verdict: Verdict, reason: str, fix: str | None = None) -> None:
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict
        self.reasons.append(reason)
        if fix:
            self.fixes.append(fix)


def decide(facts: HealthFacts) -> Health:
    found = _Findings()
    silence = _host_silence(facts)
    if silence is not None:
        found.add(
            Verdict.HOST_DOWN, f"no heartbeat for {silence:.0f} s: the host is down", HOST_DOWN_FIX
        )
    held = _held_by_stopped(facts, host_down=silence is not None)
    for group in held:
        found.add(Verdict.RECOVERING, _held_reason(group, facts.now))
    no_progress = _no_progress(facts)
    if no_progress is not None:
        found.add(Verdict.STALLED, _no_progress_reason(facts, no_progress, held))
    _cycle_findings(facts, found)
    beat = facts.beat
    return Health(
        verdict=found.verdict,
        reasons=tuple(found.reasons),
        fix=found.fixes[0] if found.fixes else None,
        last_success_at=facts.succeeded_at,
        stalled_after=facts.interval + STALLED_MARGIN,
        heartbeat_at=beat.at if beat else None,
        heartbeat_age_s=round((facts.now - beat.at).total_seconds(), 1) if beat else None,
        held=held,
        no_progress_s=no_progress,
    )


def _host_silence(facts: HealthFacts) -> float | None:
    """Seconds without a sign of life when the host is down; None while it beats (never
    having beaten says nothing: `acctsync cycle` runs without a host)."""
    beat = facts.beat
    if beat is None:
        return None
    allowed = MISSED_BEATS * beat.every_s + BEAT_SLACK_S
    if (facts.now - beat.at).total_seconds() <= allowed:
        return None
    renewed = facts.lease_renewed_at
    if renewed is not None:
        allowed += facts.lease_renew_every_s
        if (facts.now - renewed).total_seconds() <= allowed:
            return None  # one long heartbeat, still planning
    last = max(beat.at, renewed) if renewed is not None else beat.at
    return (facts.now - last).total_seconds()


def _held_by_stopped(facts: HealthFacts, *, host_down: bool) -> tuple[HeldBatches, ...]:
    """The holds of workers that stopped and whose messages are not back yet."""
    dead_process = facts.beat.process if host_down and facts.beat else None
    groups = []
    for hold in facts.holds:
        # Named until the whole second shown as "back by": a list that emptied before the
        # moment it named would say they were back when the text said not yet.
        back_at = _whole_second_after(hold.until)
        if not hold.batches or back_at <= facts.now:
            continue
        quiet = (facts.now - hold.renewed_at).total_seconds() > MISSED_RENEWALS * hold.every_s
        if quiet or hold.process == dead_process:
            batches = hold.batches
            groups.append(
                HeldBatches(
                    hold.worker,
                    back_at,
                    batches[0].cycle_id,
                    tuple(b.batch_id for b in batches),
                )
            )
    return tuple(groups)


def _whole_second_after(at: datetime) -> datetime:
    """Rounded up: "back by" is shown in whole seconds and must not name a moment too early."""
    whole = at.replace(microsecond=0)
    return whole if whole == at else whole + timedelta(seconds=1)


def _held_reason(group: HeldBatches, now: datetime) -> str:
    named = ", ".join(group.batch_ids[:NAMED]) + (", ..." if len(group.batch_ids) > NAMED else "")
    count = len(group.batch_ids)
    back = group.back_at.astimezone(UTC)
    return (
        f"{count} batch{'es' if count != 1 else ''} held by a stopped worker ({group.worker}), "
        f"back by {back:%H:%M:%S} UTC (in {(group.back_at - now).total_seconds():.0f} s): "
        f"cycle {group.cycle_id} {named}"
    )


def _no_progress(facts: HealthFacts) -> float | None:
    """Seconds the running stage has had batches queued and none applied, when too long."""
    if not facts.running or not facts.backlog or facts.moved_at is None:
        return None
    quiet = facts.now - facts.moved_at
    return round(quiet.total_seconds(), 1) if quiet > NO_PROGRESS else None


def _no_progress_reason(facts: HealthFacts, seconds: float, held: tuple[HeldBatches, ...]) -> str:
    reason = f"no progress in {facts.stage or 'the cycle'} for {seconds / 60:.0f} min"
    if facts.invisible and not held:
        reason += (
            f" ({facts.invisible} batches invisible on the queue: held by a worker; a crashed "
            "Functions host's come back within 10 minutes)"
        )
    return reason


def _cycle_findings(facts: HealthFacts, found: _Findings) -> None:
    """Whether cycles succeed within the interval plus a margin, or the running one moves on
    (a long load)."""
    failing, now = facts.failing, facts.now
    blamed_fix = facts.blamed.fix if facts.blamed else None
    if failing is not None and failing.needs_action:
        # Nothing will change until someone acts: say so at once, not an interval later.
        found.add(Verdict.STALLED, f"planning {failing.step} fails: {failing.message}", blamed_fix)
    elif (
        facts.succeeded_at is not None
        and now - facts.succeeded_at <= facts.interval + STALLED_MARGIN
    ):
        return
    elif (
        facts.running
        and facts.moved_at is not None
        and now - facts.moved_at <= STALLED_MARGIN
        and not facts.running_failed
    ):
        return  # a long cycle (a first load), still moving
    elif not facts.cycle_started and facts.failures_in_a_row == 0:
        return  # nothing has run yet
    elif facts.succeeded_at is None:
        found.add(Verdict.STALLED, "no cycle has succeeded yet", blamed_fix)
    else:
        minutes = (now - facts.succeeded_at).total_seconds() / 60
        found.add(Verdict.STALLED, f"no cycle has succeeded for {minutes:.0f} minutes", blamed_fix)
    if facts.failures_in_a_row:
        found.reasons.append(f"{facts.failures_in_a_row} failed cycles in a row")
