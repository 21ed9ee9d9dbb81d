"""The console's roles, end to end in Chromium through the simulator's Entra ID sign-in: a
viewer, an operator, an admin and a user with no role; what each sees, what the server refuses
when the request is forged with their own session and CSRF token, and the one audit entry
each console action leaves, naming who did it."""

from __future__ import annotations

import re
from typing import Any

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from acctsync.azurite import Azurite
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services, get_services
from shared.state.audit_trail import AuditEntry
from shared.state.sync_errors import ErrorCode
from tests.console.conftest import screenshot
from tests.console.test_signin import (  # noqa: F401 (fixtures)
    SESSION_SECRET,
    browser_home,
    entra_console,
    open_signed_in,
)
from tests.console.test_signin import browser as browser  # the fixture, re-exported
from tests.utils.helpers import wipe_storage


def sign_in_as(
    driver: Any, simulator: SimulatorHandle, base: str, user: str, roles: list[str], path: str
) -> None:
    simulator.control.sign_in_setup(
        redirect_uris=[f"{base}/signin/callback"], user=user, roles=roles
    )
    open_signed_in(driver, base, path)


def element(driver: Any, css: str) -> Any:
    """The element once the page that has it has loaded (after a click or a redirect)."""
    return WebDriverWait(driver, 20).until(
        ready.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def shown(driver: Any, css: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, css))


def forged(driver: Any, base: str, path: str, form: dict[str, str]) -> httpx.Response:
    """What a person who opened the browser's tools could send: their own session cookie and
    CSRF token, on a request the page never offered them."""
    cookie = driver.get_cookie("acctsync_session")["value"]
    found = re.search(r'name="csrf" value="([^"]+)"', driver.page_source)
    assert found, "no CSRF token on the page"
    return httpx.post(
        base + path, data={"csrf": found[1], **form}, cookies={"acctsync_session": cookie}
    )


def entries(services: Services, action: str) -> list[AuditEntry]:
    return [e for e in services.audit.every(since=None) if e.action.value == action]


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "role_required" and "Nothing was changed" in error["message"]


def test_each_role_sees_and_may_do_only_its_part(
    simulator: SimulatorHandle, azurite: Azurite, browser: Any
) -> None:
    wipe_storage(azurite.connection_string)
    simulator.control.reset()
    with entra_console(simulator, azurite) as base:
        services = get_services()
        services.errors.record(
            entity="contact",
            record_id="6a1d2c4e-0000-4000-8000-000000000001",
            operation="update",
            message="a planted value the mirror cannot hold",
            cycle_id="c1",
            code=ErrorCode.UNSTORABLE_VALUE,
        )

        # No role: no session, a page that names the role to ask for and whom; no data.
        sign_in_as(browser, simulator, base, "Nora Norole", [], "/errors")
        problem = element(browser, ".problem").text
        assert "no role" in problem and "Viewer role" in problem and "owners" in problem
        assert not shown(browser, "nav") and not shown(browser, "#errors")
        assert browser.get_cookie("acctsync_session") is None
        assert httpx.get(f"{base}/errors", follow_redirects=False).status_code == 303

        # Viewer: every page, no button that changes anything; the server refuses them too.
        sign_in_as(browser, simulator, base, "Vera Viewer", ["Viewer"], "/pause")
        assert element(browser, "#role").text == "viewer"
        assert shown(browser, "#operator-only") and not shown(browser, "#pause")
        assert_refused(forged(browser, base, "/pause", {"action": "pause", "confirm": "on"}))
        assert services.pauses.get() is None
        browser.get(f"{base}/errors")
        assert shown(browser, "#errors") and not shown(browser, "#retry-all, .retry-one")
        assert_refused(forged(browser, base, "/errors/retry", {}))
        browser.get(f"{base}/fields")
        assert not shown(browser, "#save-fields, #resync-form")
        boxes = browser.find_elements(By.CSS_SELECTOR, "input[name=selected]")
        assert boxes and all(not b.is_enabled() for b in boxes)

        # Operator: pauses through the page, with a reason; the admin's part stays refused.
        sign_in_as(browser, simulator, base, "Olga Operator", ["Operator"], "/pause")
        assert element(browser, "#role").text == "operator"
        browser.find_element(By.ID, "reason").send_keys("month-end close")
        browser.find_element(By.ID, "confirm").click()
        browser.find_element(By.ID, "pause").click()
        assert element(browser, "#done").text == "The sync is paused."
        browser.get(f"{base}/errors")
        assert shown(browser, "#retry-all") and shown(browser, ".retry-one")
        browser.get(f"{base}/fields")
        assert not shown(browser, "#save-fields, #resync-form")
        assert_refused(forged(browser, base, "/fields", {"selected": "name"}))
        assert_refused(forged(browser, base, "/fields/resync", {"field": "name"}))
        assert entries(services, "field_selection") == entries(services, "resync") == []

        # Admin: changes the selection through the page.
        sign_in_as(browser, simulator, base, "Ada Admin", ["Admin"], "/fields")
        assert element(browser, "#role").text == "admin"
        free = "input[name=selected]:not(:checked):not([disabled])"
        column = browser.find_element(By.CSS_SELECTOR, free).get_attribute("value")
        browser.find_element(By.ID, f"col-{column}").click()
        browser.find_element(By.ID, "save-fields").click()
        assert column in element(browser, "#saved").text

        # One entry per action, naming the Entra user (name and object id), with the values.
        (pause,) = entries(services, "pause")
        assert (pause.actor.name, pause.outcome.value) == ("Olga Operator", "succeeded")
        assert pause.actor.id and pause.after["reason"] == "month-end close"
        assert pause.before == {"paused": False}
        (selection,) = entries(services, "field_selection")
        assert selection.actor.name == "Ada Admin" and selection.actor.id != pause.actor.id
        assert column in selection.after["added"] and column not in selection.before["selected"]
        sign_ins = {(e.actor.name, e.outcome.value) for e in entries(services, "sign_in")}
        assert sign_ins == {
            ("Nora Norole", "refused"),
            ("Vera Viewer", "succeeded"),
            ("Olga Operator", "succeeded"),
            ("Ada Admin", "succeeded"),
        }

        # The Audit log page shows them; its CSV holds no secret.
        browser.get(f"{base}/audit?action=pause")
        rows = browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr[data-action]")
        assert len(rows) == 1 and "Olga Operator" in rows[0].text
        assert "month-end close" in rows[0].text
        browser.get(f"{base}/audit")
        screenshot(browser, "audit.png")
        cookie = browser.get_cookie("acctsync_session")["value"]
        exported = httpx.get(f"{base}/audit.csv", cookies={"acctsync_session": cookie})
        assert exported.status_code == 200 and "Ada Admin" in exported.text
        for secret in (SESSION_SECRET, simulator.env["DATAVERSE_CLIENT_SECRET"]):
            assert secret not in exported.text
