"""The console for people who think in account names (issue 24 item 7), in a real browser:
an account found by its name (and through its contacts) and opened, a column waiting for its
backfill marked as not loaded yet, option labels and lookup names shown beside the raw values,
and the API docs rendered with the network cut."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from acctsync.runner import run_cycle_now
from shared.sync.select_fields import edit_fields
from tests.console.conftest import Stack, chromium
from tests.console.test_console import open_page, submit, text
from tests.utils.helpers import TEST_ACTOR

# Every host name but loopback resolves to nothing: a CDN is out of reach, as offline.
NETWORK_CUT = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def test_the_api_docs_render_with_the_network_cut(stack: Stack, tmp_path: Path) -> None:
    with chromium(tmp_path, arguments=(NETWORK_CUT,)) as driver:
        driver.get(stack.base + "/api/docs")
        title = WebDriverWait(driver, 20).until(
            ready.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
        )
        assert "acctsync" in title.text
        operations = driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        assert any("/api/accounts" in o.text for o in operations)
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert loaded and all(u.startswith(stack.base) for u in loaded), loaded


def test_an_account_is_found_by_its_name_and_opened(stack: Stack, browser: Any) -> None:
    open_page(browser, stack, "/records")
    browser.find_element(By.ID, "account-id").send_keys("contoso l")
    submit(browser, By.ID, "find-account")
    link = browser.find_element(
        By.CSS_SELECTOR, f"#found-accounts a[data-account='{stack.account_id}']"
    )
    assert link.text == "Contoso Ltd"
    submit(browser, By.CSS_SELECTOR, f"#found-accounts a[data-account='{stack.account_id}']")
    assert text(browser, "#account h2").startswith("Contoso Ltd")

    # Through a contact's name: its account opens.
    open_page(browser, stack, "/records")
    browser.find_element(By.ID, "account-id").send_keys("CONTOSO PERSON 1")
    submit(browser, By.ID, "find-account")
    found = browser.find_elements(By.CSS_SELECTOR, "#found-contacts a")
    assert found and all(a.text.lower().startswith("contoso person 1") for a in found)
    submit(browser, By.CSS_SELECTOR, "#found-contacts a")
    assert text(browser, "#account h2").startswith("Contoso Ltd")

    open_page(browser, stack, "/records")
    browser.find_element(By.ID, "account-id").send_keys("Northwind")
    submit(browser, By.ID, "find-account")
    assert "starts with “Northwind”" in text(browser, "#nothing-found")


def test_a_column_waiting_for_its_backfill_is_marked_not_loaded_yet(
    stack: Stack, browser: Any
) -> None:
    edit_fields(
        stack.services, add=["donotemail"], actor=TEST_ACTOR
    )  # selected; its values come next cycle
    open_page(browser, stack, f"/records?id={stack.account_id}")
    row = text(browser, "#account-fields tr[data-field=donotemail]")
    assert "not loaded yet" in row
    assert "not loaded yet" not in text(browser, "#account-fields tr[data-field=name]")


def test_an_account_shows_option_labels_and_lookup_names_beside_the_raw_values(
    stack: Stack, browser: Any
) -> None:
    stack.simulator.control.update_account(stack.account_id, {"industrycode": 30})
    run_cycle_now(stack.services)
    open_page(browser, stack, f"/records?id={stack.account_id}")
    industry = "#account-fields tr[data-field=industrycode]"
    assert text(browser, industry + " .display-name") == "Industry"
    assert text(browser, industry + " .formatted") == "Transportation"
    assert text(browser, industry + " .raw") == "(30)"
    owner = "#account-fields tr[data-field=ownerid]"
    assert text(browser, owner + " .display-name") == "Owner"
    assert text(browser, owner + " .formatted") == "Alex Wilber"
    owner_id = stack.simulator.control.get_account(stack.account_id)["ownerid"]
    assert text(browser, owner + " .raw") == f"({owner_id})"
    state = "#account-fields tr[data-field=statecode]"
    assert text(browser, state + " .formatted") == "Active"
    # A value with nothing more to say shows as it is.
    assert text(browser, "#account-fields tr[data-field=name] .raw") == "Contoso Ltd"
