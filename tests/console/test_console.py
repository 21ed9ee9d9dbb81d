"""The admin console in a real browser, against the local host after real cycles on Azurite
and the simulator: every page shows what those cycles did, its forms change what the CLI
would, and nothing a page loads fails (the browser console stays clean)."""

from __future__ import annotations

import csv
import re
import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from acctsync.runner import run_cycle_now
from shared.mapping import read_column
from shared.setup.validate import validate
from shared.state.resync_queue import ResyncStatus, new_resync
from shared.state.sync_errors import ErrorCode
from shared.sync.select_fields import list_fields
from shared.times import utcnow
from tests.console.conftest import PLANTED_ID, Stack, screenshot
from tests.utils.helpers import API_KEY

# Pages whose own status says a request was refused: the browser logs their status codes.
REFUSED = ("status of 401", "status of 403", "status of 422")


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    """Every browser console entry at warning level or worse, over the whole module."""
    return []


def open_page(driver: Any, stack: Stack, path: str, *, sign_in: bool = True) -> None:
    """Open a page, signing in first when the session is not there (a test run alone)."""
    driver.get(stack.base + path)
    WebDriverWait(driver, 10).until(ready.presence_of_element_located((By.TAG_NAME, "main")))
    if sign_in and "/signin" in driver.current_url:
        driver.find_element(By.ID, "key").send_keys(API_KEY)
        submit(driver, By.CSS_SELECTOR, "#signin button")


def logged(driver: Any, problems: list[dict[str, Any]], *, refusals: bool = False) -> None:
    """Move what the console logged since the last call into `problems`; `refusals`: the
    page just shown was a refusal, whose status line Chromium logs too."""
    for entry in driver.get_log("browser"):
        if entry["level"] in ("SEVERE", "WARNING"):
            if refusals and any(r in entry["message"] for r in REFUSED):
                continue
            problems.append(entry)


def submit(driver: Any, by: str, value: str) -> None:
    """Click what sends a form or follows a link, and wait for the next page."""
    driver.execute_script("window.acctsyncOldPage = true")  # gone once the next page loads
    driver.find_element(by, value).click()
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script(
            "return window.acctsyncOldPage === undefined && document.readyState === 'complete'"
        )
    )


def text(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def session_cookie(driver: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def test_sign_in_refuses_a_wrong_key_and_a_form_without_its_token(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    open_page(browser, stack, "/errors", sign_in=False)
    assert "/signin" in browser.current_url  # nothing shows before sign-in
    screenshot(browser, "signin.png")
    browser.find_element(By.ID, "key").send_keys("not-the-key")
    submit(browser, By.CSS_SELECTOR, "#signin button")
    assert "That is not the key" in text(browser, ".problem")
    assert "acctsync_session" not in session_cookie(browser)
    logged(browser, problems, refusals=True)

    # Straight to the server: the key without the form's token changes nothing either.
    with httpx.Client(base_url=stack.base) as client:
        bare = client.post("/signin", data={"key": API_KEY, "next": "/"})
        assert bare.status_code == 403 and "acctsync_session" not in bare.cookies

    browser.find_element(By.ID, "key").send_keys(API_KEY)
    submit(browser, By.CSS_SELECTOR, "#signin button")
    WebDriverWait(browser, 10).until(ready.url_to_be(stack.base + "/errors"))
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["acctsync_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert API_KEY not in session["value"] and API_KEY not in browser.page_source

    # Signed in, a state-changing form without its CSRF token is refused and changes nothing,
    # and so is one with the token that comes from another site.
    csrf = browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    jar = {"acctsync_session": session["value"]}
    with httpx.Client(base_url=stack.base, cookies=jar) as client:
        assert client.get("/").status_code == 200
        missing = client.post("/pause", data={"action": "pause", "confirm": "on"})
        assert missing.status_code == 403 and "CSRF" in missing.text
        elsewhere = client.post(
            "/pause",
            data={"action": "pause", "confirm": "on", "csrf": csrf},
            headers={"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert elsewhere.status_code == 403
    assert stack.services.pauses.get() is None
    logged(browser, problems)


def test_status_shows_each_cycle_and_stage_and_exports_what_it_shows(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    second, first = stack.cycles
    open_page(browser, stack, "/")
    assert text(browser, "#sync-state") == "Running"
    cycles = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#cycles tr.cycle")]
    assert [second.cycle_id in cycles[0], first.cycle_id in cycles[1]] == [True, True]
    stages = {
        (r.find_element(By.XPATH, "preceding-sibling::tr[@class='cycle'][1]").text.split()[0],
         r.get_attribute("data-table")): [c.text for c in r.find_elements(By.TAG_NAME, "td")]
        for r in browser.find_elements(By.CSS_SELECTOR, "#cycles tr.stage")
    }  # fmt: skip
    # Columns: stage, -, started, ended, duration, new, updated, deleted, failed, skipped, ...
    load_contacts = stages[(first.cycle_id, "contacts")]
    assert load_contacts[5:10] == ["12", "0", "0", "0", "0"]
    load_account = stages[(first.cycle_id, "accounts")]
    assert load_account[5:7] == ["1", "0"]
    changed = stages[(second.cycle_id, "accounts")]
    assert changed[5:7] == ["0", "1"] and changed[10] == "12"  # 12 activities logged
    # The chart: a bar per finished cycle, and the change lag of the cycles that read
    # changes (the first load copied rows: no lag).
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart circle.lagdot")) == 1
    assert second.change_lag_s.rows == 1 and first.change_lag_s.rows == 0
    check_chart_axes(browser)
    screenshot(browser, "status.png")

    # Filtered to the contacts table: only contacts stages are left.
    open_page(browser, stack, "/?table=contacts")
    tables = {
        r.get_attribute("data-table") for r in browser.find_elements(By.CSS_SELECTOR, "tr.stage")
    }
    assert tables == {"contacts"}
    browser.find_element(By.ID, "status-csv").click()
    exported = read_download(stack.downloads, "acctsync-sync-status.csv")
    assert {row["table"] for row in exported} == {"contacts"}
    # The second cycle changed no contact: it is not shown, nor exported.
    assert {row["cycle_id"] for row in exported} == {first.cycle_id}
    assert second.cycle_id not in text(browser, "#cycles")
    assert [r["new"] for r in exported if r["cycle_id"] == first.cycle_id] == ["12"]
    open_page(browser, stack, "/?status=failed")
    assert "No cycle matches" in text(browser, "#cycles")
    logged(browser, problems)


def check_chart_axes(browser: Any) -> None:
    """Both value axes carry units, the time axis spans the whole week, every label is inside
    the drawing, and the chart fills its card."""
    labels = {
        css: [t.text for t in browser.find_elements(By.CSS_SELECTOR, f"svg.chart text.{css}")]
        for css in ("records", "lag", "time")
    }
    assert all(t.endswith(" records") for t in labels["records"]), labels
    assert labels["lag"][-1] == "0 s lag", labels
    assert re.fullmatch(r"[\d.,]+ (s|min|h|days) lag", labels["lag"][0]), labels
    since, until = (datetime.strptime(t, "%Y-%m-%d %H:%M UTC") for t in labels["time"])
    assert until - since == timedelta(days=7), labels["time"]
    inside = browser.execute_script(
        """const svg = document.querySelector('svg.chart'), box = svg.viewBox.baseVal;
        return [...svg.querySelectorAll('text')].every(t => { const b = t.getBBox();
          return b.x >= 0 && b.y >= 0 && b.x + b.width <= box.width
            && b.y + b.height <= box.height; });"""
    )
    assert inside, "an axis label is cut off"
    card = browser.find_element(By.ID, "chart").find_element(By.XPATH, "..")
    padding = browser.execute_script(
        "const s = getComputedStyle(arguments[0]); "
        "return parseFloat(s.paddingLeft) + parseFloat(s.paddingRight);",
        card,
    )
    drawn = browser.find_element(By.CSS_SELECTOR, "svg.chart").size["width"]
    assert drawn >= (card.size["width"] - padding) * 0.98, (drawn, card.size["width"])


def read_download(folder: Path, name: str) -> list[dict[str, str]]:
    target = folder / name
    deadline = time.monotonic() + 10
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    target.unlink()
    return rows


def test_error_search_finds_the_planted_error(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    open_page(browser, stack, "/errors")
    search = browser.find_element(By.ID, "error-search")
    search.send_keys("planted-row")
    submit(browser, By.ID, "error-find")
    rows = browser.find_elements(By.CSS_SELECTOR, "#errors tbody tr")
    assert len(rows) == 1 and PLANTED_ID in rows[0].text and "unstorable_value" in rows[0].text
    screenshot(browser, "errors.png")
    open_page(browser, stack, "/errors?q=64+KiB&entity=account")
    assert "No sync error matches" in text(browser, "#errors")
    open_page(browser, stack, "/errors?q=64+KiB&entity=contact")
    assert PLANTED_ID in text(browser, "#errors")
    logged(browser, problems)


def test_fields_refuse_an_unreadable_column_and_backfill_a_new_one(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    control, services = stack.simulator.control, stack.services
    control.set_column_secured("revenue", True)  # no profile grants the sync user read
    before = services.fields.get()
    open_page(browser, stack, "/fields")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-column=revenue]")
    assert "secured" in row.text and "field security profile" in row.text
    revenue = browser.find_element(By.ID, "col-revenue")
    assert revenue.is_selected() and revenue.is_enabled()  # still selected: it can be dropped
    # An unreadable column cannot be ticked; the server refuses it anyway.
    secured = browser.find_element(By.ID, "col-creditlimit")
    assert not secured.is_enabled() and not secured.is_selected()
    browser.execute_script("arguments[0].disabled = false; arguments[0].checked = true;", secured)
    submit(browser, By.ID, "save-fields")
    refused = text(browser, "#refused")
    assert "creditlimit" in refused and "cannot read" in refused
    assert services.fields.get() == before  # nothing was stored
    logged(browser, problems, refusals=True)

    # Saving changes only what was ticked: revenue, unreadable now, stays selected.
    browser.find_element(By.ID, "col-new_longnotes").click()
    submit(browser, By.ID, "save-fields")
    assert "Added: new_longnotes" in text(browser, "#saved")
    selected = {c["name"] for c in list_fields(services) if c["selected"]}
    assert {"new_longnotes", "revenue"} <= selected
    browser.find_element(By.ID, "col-revenue").click()
    submit(browser, By.ID, "save-fields")
    assert "Removed: revenue" in text(browser, "#saved")
    waiting = text(browser, "#backfill tr[data-column=new_longnotes]")
    assert "waiting" in waiting
    selected = {c["name"] for c in list_fields(services) if c["selected"]}
    assert "new_longnotes" in selected and "revenue" not in selected

    control.update_account(stack.account_id, {"new_longnotes": "Key account since 2019"})
    cycle = run_cycle_now(services)
    assert cycle.backfill == ("new_longnotes",)
    account: dict[str, Any] = services.accounts.get(stack.account_id) or {}
    assert read_column(account, "new_longnotes") == "Key account since 2019"
    open_page(browser, stack, "/fields")
    done = text(browser, "#backfill tr[data-column=new_longnotes]")
    assert "done" in done and cycle.cycle_id in done
    screenshot(browser, "fields.png")
    control.set_column_secured("revenue", False)
    logged(browser, problems)


def test_validate_shows_the_cli_rows_and_runs_again(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    open_page(browser, stack, "/validate")
    shown = [
        [c.text for c in r.find_elements(By.TAG_NAME, "td")[:2]]
        for r in browser.find_elements(By.CSS_SELECTOR, "#checks tbody tr")
    ]
    expected = [[row.check, row.status.value] for row in validate(lambda: stack.services.settings)]
    assert shown == expected
    submit(browser, By.ID, "rerun")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#checks tbody tr")) == len(expected)
    screenshot(browser, "validate.png")
    logged(browser, problems)


def test_pause_then_resume_after_confirming(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    services = stack.services
    open_page(browser, stack, "/pause")
    assert text(browser, "#pause-state") == "running"
    browser.find_element(By.ID, "pause").click()  # not confirmed: the form does not go
    assert services.pauses.get() is None
    browser.find_element(By.ID, "confirm").click()
    submit(browser, By.ID, "pause")
    assert "paused" in text(browser, "#done")
    assert services.pauses.get() is not None
    open_page(browser, stack, "/")
    assert text(browser, "#sync-state") == "Paused"
    assert text(browser, "#next-due") == "no cycle starts until the sync is resumed"
    open_page(browser, stack, "/pause")
    screenshot(browser, "pause.png")
    browser.find_element(By.ID, "confirm").click()
    submit(browser, By.ID, "resume")
    assert "runs again" in text(browser, "#done")
    assert services.pauses.get() is None
    logged(browser, problems)


def test_records_show_the_account_its_contacts_and_their_activities(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    # A local edit through a contact (the JSON API): marked as locally modified.
    edit = httpx.patch(
        f"{stack.base}/api/contacts/{stack.contacts[0]}/account",
        json={"fields": {"telephone1": "+1 555 0100"}},
        headers={"x-functions-key": API_KEY},
    )
    assert edit.status_code == 200, edit.text
    open_page(browser, stack, "/records")
    browser.find_element(By.ID, "account-id").send_keys(stack.account_id)
    submit(browser, By.ID, "find-account")
    assert text(browser, "#account h2").startswith("Contoso Ltd")
    phone = text(browser, "#account-fields tr[data-field=telephone1]")
    assert "+1 555 0100" in phone and "locally modified" in phone
    assert "locally modified" not in text(browser, "#account-fields tr[data-field=name]")
    contacts = browser.find_elements(By.CSS_SELECTOR, "details.contact")
    assert len(contacts) == 10  # a page of them
    page_one = {c.get_attribute("data-contact") for c in contacts}
    first = contacts[0]
    newest_first = [
        [c.text for c in r.find_elements(By.TAG_NAME, "td")[2:5]]
        for r in first.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    # The local edit (newest), then the change from Dynamics.
    assert newest_first[0][0] == "telephone1" and newest_first[-1] == [
        "name",
        "Contoso",
        "Contoso Ltd",
    ]
    screenshot(browser, "records.png")
    submit(browser, By.ID, "next")
    shown = browser.find_elements(By.CSS_SELECTOR, "details.contact")
    assert len(shown) == 2
    page_two = {c.get_attribute("data-contact") for c in shown}
    assert page_one | page_two == set(stack.contacts) and not page_one & page_two
    logged(browser, problems)


def test_a_field_re_synced_from_the_fields_page_drops_the_local_edit(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    """Quick Sync from the console: the records test's local edit of telephone1 goes, the
    Dynamics value comes back, no activity is logged; a backwards range is refused."""
    services = stack.services
    account: dict[str, Any] = services.accounts.get(stack.account_id) or {}
    assert read_column(account, "telephone1") == "+1 555 0100"
    logged_before = len(services.activities.for_contact(stack.contacts[0]))
    open_page(browser, stack, "/fields")
    Select(browser.find_element(By.ID, "resync-field")).select_by_value("telephone1")
    browser.find_element(By.ID, "resync-since").send_keys("02012026")  # mm/dd/yyyy locale
    browser.find_element(By.ID, "resync-until").send_keys("01012026")
    submit(browser, By.ID, "resync-submit")
    assert "swap" in text(browser, "#refused")  # until before since: nothing queued
    assert services.resyncs.all() == []
    logged(browser, problems, refusals=True)

    Select(browser.find_element(By.ID, "resync-field")).select_by_value("telephone1")
    submit(browser, By.ID, "resync-submit")
    assert "Queued" in text(browser, "#resync-queued")
    assert "queued" in text(browser, "#resyncs tr[data-field=telephone1]")
    for _ in range(3):
        run_cycle_now(services)
        if not any(r.status.active for r in services.resyncs.all()):
            break
    dynamics = stack.simulator.control.get_account(stack.account_id).get("telephone1")
    account = services.accounts.get(stack.account_id) or {}
    assert read_column(account, "telephone1") == dynamics
    assert len(services.activities.for_contact(stack.contacts[0])) == logged_before
    open_page(browser, stack, "/fields")
    assert "finished" in text(browser, "#resyncs tr[data-field=telephone1]")
    logged(browser, problems)


def test_retry_reads_the_record_again_and_the_row_says_it_resolved(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    services, contact_id = stack.services, stack.contacts[1]
    services.errors.record(
        entity="contact",
        record_id=contact_id,
        operation="update",
        message="planted: a change the mirror could not take",
        cycle_id="c-retry",
        code=ErrorCode.UNSTORABLE_VALUE,
    )
    stack.simulator.control.update_contact(contact_id, {"lastname": "Retried"})
    open_page(browser, stack, f"/errors?q={contact_id}")
    submit(browser, By.CSS_SELECTOR, f"button.retry-one[data-id='{contact_id}']")
    assert "Retried 1 record from Dynamics: 1 resolved" in text(browser, "#retried")
    contact = services.contacts.get(contact_id)
    assert contact is not None and read_column(contact, "lastname") == "Retried"
    open_page(browser, stack, f"/errors?q={contact_id}")
    (row,) = browser.find_elements(By.CSS_SELECTOR, "#errors tbody tr")
    assert "retried" in row.text and "resolved" in row.text
    assert row.find_elements(By.CSS_SELECTOR, "button.retry-one") == []  # resolved: no Retry

    # The planted row without a usable id has no Retry; Retry all skips it and says so.
    open_page(browser, stack, "/errors?q=planted-row")
    assert browser.find_elements(By.CSS_SELECTOR, "#errors button.retry-one") == []
    submit(browser, By.ID, "retry-all")
    assert "name no record to read again" in text(browser, "#retried")
    logged(browser, problems)


def test_the_fields_page_lists_every_pending_resync(
    stack: Stack, browser: Any, problems: list[dict[str, Any]]
) -> None:
    services = stack.services
    stored = services.fields.get()
    assert stored is not None
    columns = [c for c in stored.columns if c not in stored.unreadable][:12]
    since = utcnow() - timedelta(days=1)
    queued = [
        services.resyncs.add(new_resync(c, now=utcnow(), by="a test", modified_since=since))
        for c in columns
    ]
    assert len(queued) == 12
    open_page(browser, stack, "/fields")
    shown = browser.find_elements(By.CSS_SELECTOR, "#resyncs tbody tr")
    waiting = {r.get_attribute("data-field") for r in shown if "queued" in r.text}
    assert waiting == set(columns)
    for request in queued:  # the module's stack goes on without them
        services.resyncs.save(replace(request, status=ResyncStatus.CANCELLED))
    logged(browser, problems)


def test_no_page_logged_an_error_to_the_browser_console(
    browser: Any, problems: list[dict[str, Any]]
) -> None:
    logged(browser, problems)
    assert problems == []
