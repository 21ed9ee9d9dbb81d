"""The filters of the console's lists (dates from the page's date inputs), and CSV export of
exactly the rows a page shows."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import Response

from shared.csvcells import text_cell

# The longest search text a list's filter takes (a key's length is far less than this).
SEARCH_CHARS = 200


def day_start(text: str | None) -> datetime | None:
    """The start of a YYYY-MM-DD day in UTC; None when empty; ValueError when malformed."""
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)


def day_end(text: str | None) -> datetime | None:
    start = day_start(text)
    return start + timedelta(days=1) - timedelta(milliseconds=1) if start else None


def date_range(since: str, until: str) -> tuple[datetime | None, datetime | None, str | None]:
    """The range the page's two date inputs name, and what is wrong with them if anything."""
    try:
        start, end = day_start(since), day_end(until)
    except ValueError:
        return None, None, "Dates are YYYY-MM-DD; the date filter was left out."
    if start and end and start > end:
        return None, None, "The 'from' date is after the 'to' date; the date filter was left out."
    return start, end, None


def choice(value: str, choices: Collection[str]) -> str:
    """`value` when it is one of `choices`; anything else is no filter at all ("")."""
    return value if value in choices else ""


@dataclass(frozen=True)
class DatedQuery:
    """A console list's date inputs, from the page's query (its CSV export takes the same);
    each list adds its own filters."""

    since: str = ""
    until: str = ""

    def dates(self) -> tuple[datetime | None, datetime | None, str | None]:
        return date_range(self.since, self.until)


Filter = TypeVar("Filter")


@dataclass(frozen=True)
class SearchQuery(DatedQuery, Generic[Filter]):
    """A list searched by text as well as by date; each list turns it into the filter its
    repository takes (`filter`)."""

    q: str = ""

    @property
    def text(self) -> str:
        return self.q[:SEARCH_CHARS]

    def wanted(self) -> tuple[Filter, str | None]:
        """The filter the page asks for, and what is wrong with its dates (left out then)."""
        since, until, problem = self.dates()
        return self.filter(since, until), problem

    def filter(self, since: datetime | None, until: datetime | None) -> Filter:
        raise NotImplementedError


def list_context(
    request: Request, form: DatedQuery, problem: str | None, *, shown: int, retention_days: float
) -> dict[str, Any]:
    """What a searchable list shows around its rows: the form as sent, what is wrong with its
    dates, how many rows it shows at most, how long they are kept, and the query its CSV
    export link repeats."""
    return {
        "form": form,
        "problem": problem,
        "shown": shown,
        "retention_days": retention_days,
        "query": request.url.query,
    }


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([text_cell(c) if isinstance(c, str) else c for c in row])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
