"""The console lists' filters, read from a page's query as FastAPI reads them (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.web.console.audit_page import AuditQuery
from shared.web.console.errors_page import ErrorQuery
from shared.web.console.status_page import StatusFilter


def _read(query_class: type, query: str) -> object:
    app = FastAPI()

    @app.get("/")
    def page(form: object = Depends(query_class)) -> dict[str, str]:
        read.append(form)
        return {}

    read: list[object] = []
    assert TestClient(app).get(f"/?{query}").status_code == 200
    return read[0]


def test_an_audit_search_keeps_known_choices_and_a_day_range() -> None:
    form = _read(
        AuditQuery, "q=nora&action=pause&outcome=nonsense&since=2026-12-01&until=2026-12-02"
    )
    assert isinstance(form, AuditQuery)
    wanted, problem = form.wanted()
    assert problem is None
    assert (wanted.text, wanted.action, wanted.outcome) == ("nora", "pause", "")
    assert wanted.since == datetime(2026, 12, 1, tzinfo=UTC)
    assert wanted.until is not None and wanted.until.date().day == 2


def test_an_error_search_cuts_long_text_and_says_what_is_wrong_with_its_dates() -> None:
    form = _read(ErrorQuery, f"q={'x' * 300}&code=nonsense&cycle=%20c1%20&since=2026-13-01")
    assert isinstance(form, ErrorQuery)
    wanted, problem = form.wanted()
    assert (len(wanted.text), wanted.code, wanted.cycle_id) == (200, "", "c1")
    assert problem == "Dates are YYYY-MM-DD; the date filter was left out."
    assert wanted.since is None and wanted.until is None


def test_a_status_filter_drops_an_unknown_table_or_status() -> None:
    form = _read(StatusFilter, "table=accounts&status=nonsense&since=2026-12-02&until=2026-12-01")
    assert isinstance(form, StatusFilter)
    assert (form.table, form.status) == ("accounts", "")
    assert (
        form.dates()[2] == "The 'from' date is after the 'to' date; the date filter was left out."
    )
