"""Validation of ids and versions that come from outside before they reach a URL, a table key
or a comparison of versions."""

from __future__ import annotations

import uuid


class InvalidId(ValueError):
    """The value is not a GUID."""


def parse_guid(value: object) -> str:
    """The canonical lowercase form of a GUID, or InvalidId."""
    if not isinstance(value, str) or len(value) != 36:
        raise InvalidId(f"{value!r} is not a GUID like 00000000-0000-0000-0000-000000000000")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidId(
            f"{value!r} is not a GUID like 00000000-0000-0000-0000-000000000000"
        ) from None


class InvalidVersion(ValueError):
    """The value is not a Dataverse row version."""


def parse_version(value: object) -> int:
    """A versionnumber (or a re-load generation) as a non-negative int: Dataverse sends it as a
    number or a numeric string; anything else (a boolean, a fraction, a negative) is refused."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidVersion(f"versionnumber {value!r} is not a number")
    try:
        number = int(value)
    except ValueError:
        raise InvalidVersion(f"versionnumber {value!r} is not a number") from None
    if number < 0:
        raise InvalidVersion(f"versionnumber {value!r} is negative")
    return number
