"""Marketo's activity threshold: an account-field change logs a Change Data Value activity on
every contact of the account, unless the account has more contacts than the limit."""

from __future__ import annotations


def logs_activities(contact_count: int, limit: int) -> bool:
    """True when an account with `contact_count` live contacts gets per-contact activities."""
    return contact_count <= limit


def contacts_to_count(limit: int) -> int:
    """How many contacts to read to decide the rule: one more than the limit is enough."""
    return limit + 1
