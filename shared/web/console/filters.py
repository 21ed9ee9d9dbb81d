"""The console's searched lists (the audit log, Sync Errors): their filters (dates from the
page's date inputs, text, choices), their page, and the CSV export of exactly the rows it
shows."""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import Response

from shared.csvcells import text_cell
from shared.services import Services
from shared.settings import Settings
from shared.web.console.pages import render
from shared.web.console.session import Session

# The longest search text a list's filter takes (a key's length is far less than this).
SEARCH_CHARS = 200
SHOWN = 500  # the most rows a searched list shows (the newest), and its CSV exports


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
class SearchQuery(DatedQuery, ABC, Generic[Filter]):
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

    @abstractmethod
    def filter(self, since: datetime | None, until: datetime | None) -> Filter:
        """The list's own filter over this date range."""


@dataclass(frozen=True)
class SearchedList(Generic[Filter]):
    """One searched list of the console: its page's template, its CSV's name and columns, the
    rows a filter finds (the newest SHOWN at most) and how long its rows are kept."""

    template: str
    csv_name: str
    header: tuple[str, ...]
    rows: Callable[[Services, Filter], list[dict[str, Any]]]
    kept_days: Callable[[Settings], float]

    def page(
        self,
        request: Request,
        services: Services,
        query: SearchQuery[Filter],
        *,
        session: Session,
        shows: Mapping[str, Any],
    ) -> Response:
        """The page: its rows, what else it `shows`, and around them the form as sent, what is
        wrong with its dates, how long rows are kept, and the query its CSV link repeats."""
        wanted, problem = query.wanted()
        around = {"form": query, "problem": problem, "shown": SHOWN, "query": request.url.query}
        kept = self.kept_days(services.settings)
        context = {**shows, **around, "retention_days": kept, "rows": self.rows(services, wanted)}
        return render(request, self.template, context, session=session)

    def csv(self, services: Services, query: SearchQuery[Filter]) -> Response:
        """Exactly the rows the page shows, in the columns of `header`."""
        wanted, _ = query.wanted()
        cells = ([row[k] for k in self.header] for row in self.rows(services, wanted))
        return csv_response(self.csv_name, self.header, cells)


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
