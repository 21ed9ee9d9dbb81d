"""Validation of ids that come from outside before they reach a URL or a table key."""

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
