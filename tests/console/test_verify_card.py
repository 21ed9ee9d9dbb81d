"""The Sync Status page's Mirror check in a real browser: it says what the last verify found in
plain words with sample records to open, what runs now and what is due, and its buttons ask
for a verify (with or without repair) that the next heartbeat runs."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from acctsync.runner import run_cycle_now, run_verify_now
from shared.mirror.records import bucket
from shared.state.schedule import Phase
from shared.sync.cycle import Action, heartbeat
from tests.console.conftest import Stack, screenshot
from tests.console.test_console import logged, open_page, submit, text


def ask(browser: Any, stack: Stack, button: str) -> None:
    open_page(browser, stack, "/")
    submit(browser, By.ID, button)
    assert "it starts at the next heartbeat" in text(browser, "#verify-asked")


def test_mirror_check_shows_the_drift_found_and_the_repair(stack: Stack, browser: Any) -> None:
    services, problems = stack.services, list[dict[str, Any]]()
    open_page(browser, stack, "/")
    assert text(browser, "#verify-result").startswith("No verify has run yet")
    succeeded = services.schedule.read().succeeded_at
    assert succeeded is not None
    assert text(browser, "#verify-next").startswith("Next scheduled verify due 20")

    # A contact the mirror lost; one more cycle first, past the second the stack's records
    # were made in (a change in the second of a read counts as pending, not drift).
    time.sleep(1.1)
    run_cycle_now(services)
    lost = stack.contacts[0]
    services.contacts.table.delete_entity(bucket(lost), lost)

    ask(browser, stack, "verify-now")
    requested = services.verifies.requested()
    assert requested is not None and not requested.repair
    assert "is asked for" in text(browser, "#verify-requested")
    found = run_verify_now(services, repair=False, deep=False)
    assert found.id == requested.id  # the console's ask is the one that ran

    open_page(browser, stack, "/")
    assert "The mirror differs from Dynamics: 1 record is not as Dynamics has it" in text(
        browser, "#verify-result"
    )
    drift = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#verify-drift li")]
    assert drift == ["1 record missing from the mirror"]
    facts = text(browser, "#verify-facts")
    assert facts.startswith("Not repaired")
    assert f"with {found.dataverse_requests} Dataverse requests" in facts
    (row,) = browser.find_elements(By.CSS_SELECTOR, "#verify-samples tbody tr")
    assert lost in row.text and "contacts" in row.text
    # A sample opens the Records page of the account the mirror holds for it: the lost
    # contact has none to open until the repair brings it back.
    assert row.find_elements(By.TAG_NAME, "a") == []
    screenshot(browser, "status-verify-drift.png")

    ask(browser, stack, "verify-repair")
    requested = services.verifies.requested()
    assert requested is not None and requested.repair
    repaired = run_verify_now(services, repair=True, deep=False)
    assert (repaired.id, repaired.repaired, repaired.drift_left) == (requested.id, 1, 0)
    open_page(browser, stack, "/")
    finished = repaired.finished_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert text(browser, "#verify-result") == f"Mirror equals Dynamics as of {finished}"
    assert text(browser, "#verify-facts").startswith("Repaired 1 record")
    link = browser.find_element(By.CSS_SELECTOR, "#verify-samples a")
    assert link.get_attribute("href").endswith(f"/records?id={stack.account_id}")
    submit(browser, By.CSS_SELECTOR, "#verify-samples a")
    assert "Contoso" in text(browser, "main")
    logged(browser, problems)
    assert problems == []


def test_mirror_check_shows_the_verify_under_way_and_when_none_is_scheduled(
    stack: Stack, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = stack.services
    ask(browser, stack, "verify-now")
    # A heartbeat with no time to spare: it does one unit of the verify and leaves the rest.
    monkeypatch.setattr(services, "settings", replace(services.settings, plan_budget_seconds=0))
    assert heartbeat(services, owner="console-test").action is Action.VERIFYING
    assert services.schedule.read().phase is Phase.VERIFYING
    open_page(browser, stack, "/")
    assert text(browser, "#verify-running").startswith("running: contacts ")
    screenshot(browser, "status-verify-running.png")
    monkeypatch.undo()
    while heartbeat(services, owner="console-test").action is not Action.VERIFIED:
        time.sleep(0.1)

    monkeypatch.setattr(services, "settings", replace(services.settings, verify_interval_hours=0))
    open_page(browser, stack, "/")
    assert text(browser, "#verify-next") == "Scheduled verifies are off (VERIFY_INTERVAL_HOURS=0)."
    assert browser.find_elements(By.ID, "verify-running") == []
