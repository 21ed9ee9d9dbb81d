"""Change Data Value activities of a change, under Marketo's threshold rule.

A change of an account field logs one activity per live contact of the account per changed
field, when the account has at most ACTIVITY_CONTACT_LIMIT contacts; otherwise none, and the
exact number not logged is reported as suppressed. The rule reads the account's member keys in
one pass, holding at most limit + 1 of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from shared.mirror.activities import Activity, ActivityWriter
from shared.mirror.feed_index import FeedWriter
from shared.mirror.row import FieldChange
from shared.services import Services
from shared.threshold import contacts_to_count, logs_activities


@dataclass(frozen=True)
class FieldsChanged:
    """Fields of one account changed once (a Dynamics version, or a local edit)."""

    account_id: str
    changes: list[FieldChange]
    change_key: str  # the same change always has the same key: logging it twice is harmless
    at: datetime
    reason: str
    source: str

    def activities(self, contacts: list[str]) -> Iterator[Activity]:
        for contact in contacts:
            for change in self.changes:
                yield Activity(
                    contact,
                    self.account_id,
                    change.field,
                    change.old,
                    change.new,
                    self.reason,
                    self.source,
                    self.at,
                    self.change_key,
                )


@dataclass(frozen=True)
class FanOut:
    """Who gets a change's activities: the contacts (none when the rule suppresses them)."""

    contacts: list[str]
    fields: int
    suppressed: int

    @property
    def logged(self) -> int:
        return len(self.contacts) * self.fields


def fan_out(services: Services, event: FieldsChanged) -> FanOut:
    if not event.changes:
        return FanOut([], 0, 0)
    limit = services.settings.activity_contact_limit
    members = services.members.read(event.account_id, keep=contacts_to_count(limit))
    if not logs_activities(members.count, limit):
        return FanOut([], len(event.changes), members.count * len(event.changes))
    return FanOut(members.first, len(event.changes), 0)


def log_change_activities(services: Services, event: FieldsChanged) -> tuple[int, int]:
    """Log one change's activities; returns (logged, suppressed)."""
    fan = fan_out(services, event)
    feed = FeedWriter(services.feed, f"edit|{event.account_id}|{event.change_key}")
    writer = ActivityWriter(services.activities.table, feed=feed)
    try:
        for activity in event.activities(fan.contacts):
            writer.add(activity)
        writer.flush()
    finally:
        # An edit is not redelivered: whatever it wrote is all it will write.
        feed.close()
    return fan.logged, fan.suppressed
