"""What a console list (the audit log, Sync Errors) asks its repository for: text to find, in
any case, and a time range, which the repository reads as a key range. Each list adds its own
choices; an empty part matches everything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class ListFilter:
    text: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def needle(self) -> str:
        """The text to find, as every list compares it: trimmed and lower case."""
        return self.text.strip().lower()
