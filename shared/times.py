"""Time in one form everywhere: aware UTC datetimes, ISO-8601 text with Z, inverted keys."""

from __future__ import annotations

from datetime import UTC, datetime

# Keys carry a time as 13 digits of milliseconds (up to the year 2286), those that sort newest
# first inverted against this bound; a time outside is clamped to the nearest end, so that a
# query from the year 1 or up to the year 9999 still means "from the start" or "to the end".
KEY_MS_BOUND = 10**13 - 1
# What a Dynamics DateTime column holds (also a time Table Storage can, which starts at 1601).
DATAVERSE_EARLIEST = datetime(1753, 1, 1, tzinfo=UTC)
DATAVERSE_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before the year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None


def within_dataverse(at: datetime) -> bool:
    """Whether Dynamics can hold (and filter on) this time."""
    return DATAVERSE_EARLIEST <= at <= DATAVERSE_LATEST


def key_ms(at: datetime) -> int:
    """Milliseconds since 1970, clamped to what a 13-digit key holds."""
    return min(max(int(at.timestamp() * 1000), 0), KEY_MS_BOUND)


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
    return f"{KEY_MS_BOUND - key_ms(at):013d}"
