"""The Change Data Value activities of a batch's account changes, and their counts."""

from __future__ import annotations

from collections import defaultdict

from shared.mirror.activities import ActivityWriter
from shared.mirror.records import PARALLEL_READS
from shared.mirror.writes import run_parallel
from shared.sync.apply.account_plans import AccountPlan
from shared.sync.apply.change_activities import FanOut, FieldsChanged, fan_out
from shared.sync.apply.context import ApplyContext, change_time

SYNC_REASON = "Account field changed in Dynamics"
SYNC_SOURCE = "Dynamics sync"


class AccountActivities:
    def __init__(self, context: ApplyContext):
        self.context = context
        # Fields whose activities were counted, per account: a change applied again after a
        # conflict rewrites its activities (same keys) but does not count them twice.
        self._counted: dict[str, set[str]] = defaultdict(set)

    def log(self, plans: list[AccountPlan]) -> None:
        """The activities of every changed account of the batch, streamed into one writer:
        grouped by contact partition they fill transactions that one account's few contacts
        could not, and no more than the writer's bound is held at a time. The threshold rule
        of each account is one query of its own: a few run side by side."""
        changed = [p for p in plans if p.diff]
        if not changed:
            return
        writer = ActivityWriter(self.context.services.activities.table, feed=self.context.feed)
        for start in range(0, len(changed), PARALLEL_READS):
            chunk = changed[start : start + PARALLEL_READS]
            events = [self._event(p) for p in chunk]
            fans = run_parallel(
                lambda e: fan_out(self.context.services, e), events, width=PARALLEL_READS
            )
            for event, fan in zip(events, fans, strict=True):
                for activity in event.activities(fan.contacts):
                    writer.add(activity)
                self._count(event, fan)
        writer.flush()

    def _event(self, plan: AccountPlan) -> FieldsChanged:
        change = plan.change
        return FieldsChanged(
            account_id=change.id,
            changes=plan.diff,
            change_key=f"v{change.version:020d}",
            at=change_time(change.modified_on) or self.context.now,
            reason=SYNC_REASON,
            source=SYNC_SOURCE,
        )

    def _count(self, event: FieldsChanged, fan: FanOut) -> None:
        counted = self._counted[event.account_id]
        new = {c.field for c in event.changes} - counted
        counted |= new
        result = self.context.result
        if fan.contacts:
            result.activities_logged += len(fan.contacts) * len(new)
        elif fan.fields:
            result.activities_suppressed += fan.suppressed // fan.fields * len(new)
