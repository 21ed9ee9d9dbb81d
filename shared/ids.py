"""Validation of ids and versions that come from outside before they reach a URL, a table key
or a comparison of versions."""

from __future__ import annotations

import re

from shared.errors import AcctsyncError


class InvalidId(AcctsyncError, ValueError):
    """The value is not a GUID."""


_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_guid(value: object) -> str:
    """The canonical lowercase form of a GUID (the 8-4-4-4-12 hex form), or InvalidId."""
    if isinstance(value, str) and len(value) == 36:
        lowered = value.lower()
        if _GUID.fullmatch(lowered):
            return lowered
    raise InvalidId(f"{value!r} is not a GUID like 00000000-0000-0000-0000-000000000000")


class InvalidVersion(AcctsyncError, ValueError):
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
