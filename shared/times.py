"""Time in one form everywhere: aware UTC datetimes, ISO-8601 text with Z, inverted keys."""

from __future__ import annotations

from datetime import UTC, datetime

# Keys that sort newest first carry the time in milliseconds inverted against this bound.
_TIME_BOUND_MS = 10**13 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime | None) -> str | None:
    """Seconds precision, as Dataverse writes date-times; None stays None."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None


def iso_precise(at: datetime) -> str:
    """Microseconds precision, for moments that several events can share a second with."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """An ISO-8601 date-time with a zone (Z or an offset) as aware UTC; ValueError otherwise."""
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z for UTC")
    return parsed.astimezone(UTC)


def newest_first_query(
    partition: str, since: datetime | None, until: datetime | None
) -> tuple[str, dict[str, str]]:
    """The filter of a partition's rows keyed `inverted_ms(at)|...` with `at` in
    [since, until]: one key range, newest first."""
    query, parameters = "PartitionKey eq @p", {"p": partition}
    if until is not None:
        query += " and RowKey ge @newest"
        parameters["newest"] = inverted_ms(until)
    if since is not None:
        query += " and RowKey lt @oldest"
        parameters["oldest"] = inverted_ms(since) + "}"  # past every "<key>|..." of `since`
    return query, parameters


def inverted_ms(at: datetime) -> str:
    """A 13-digit key part that sorts later moments first."""
    return f"{_TIME_BOUND_MS - int(at.timestamp() * 1000):013d}"
