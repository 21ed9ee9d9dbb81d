"""The console's sign-in. In Azure, end to end: OpenID Connect's authorization code flow with
PKCE through msal, against the simulator's Entra ID over HTTPS, in a real browser that trusts
the simulator's CA the way a browser trusts any (an NSS database, no verification turned off).
The redirect URI the console sends is the one an admin registers; only the tenant's users, or
the members of one group, get a session. Locally, with the API key: wrong keys make the
address wait."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from acctsync.azurite import Azurite
from acctsync.localhost import serving_api
from acctsync.ports import free_port
from acctsync.sim.harness import SimulatorHandle
from acctsync.sim.org import Org
from shared.services import get_services, reset_services
from shared.times import utcnow
from tests.console.conftest import chromium, screenshot
from tests.utils.helpers import API_KEY

GROUP = "3f5c8a51-0d8e-4f57-9a44-6f3f2d7d6b10"
SESSION_SECRET = "console-session-secret-for-tests-only-0123456789"
USER = Org().sync_user.name


@contextmanager
def entra_console(
    simulator: SimulatorHandle, azurite: Azurite, *, group: str | None = None
) -> Iterator[str]:
    """The local host's app with the console signing in through Entra ID (the simulator's
    tenant and app registration, as infra/ sets them in Azure); yields its URL."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in simulator.env.items():
            if name.startswith("DATAVERSE_"):
                env.setenv(name, value)
        env.setenv("AzureWebJobsStorage", azurite.connection_string)
        env.setenv("CONSOLE_ENTRA_CLIENT_ID", simulator.env["DATAVERSE_CLIENT_ID"])
        env.setenv("CONSOLE_ENTRA_TENANT_ID", simulator.env["DATAVERSE_TENANT_ID"])
        env.setenv("CONSOLE_ENTRA_CLIENT_SECRET", simulator.env["DATAVERSE_CLIENT_SECRET"])
        env.setenv("CONSOLE_SESSION_SECRET", SESSION_SECRET)
        if group:
            env.setenv("CONSOLE_ENTRA_GROUP_ID", group)
        else:
            env.delenv("CONSOLE_ENTRA_GROUP_ID", raising=False)
        reset_services()
        try:
            with serving_api(API_KEY, port=free_port()) as base:
                yield base
        finally:
            reset_services()


@pytest.fixture(scope="module")
def browser_home(simulator: SimulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose NSS database trusts the simulator's CA, as an admin's machine trusts
    Microsoft's."""
    if shutil.which("certutil") is None:
        pytest.skip("certutil (Debian's libnss3-tools) is missing: make test installs it")
    home = tmp_path_factory.mktemp("browser-home")
    nss = home / ".pki" / "nssdb"
    nss.mkdir(parents=True)
    certutil = ["certutil", "-d", f"sql:{nss}"]
    subprocess.run([*certutil, "-N", "--empty-password"], check=True)
    subprocess.run(
        [*certutil, "-A", "-t", "C,,", "-n", "simulator CA", "-i", simulator.ca_file], check=True
    )
    return home


@pytest.fixture(scope="module")
def browser(browser_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("downloads"), home=browser_home) as driver:
        yield driver


def open_signed_in(driver: Any, base: str, path: str) -> None:
    """Open a console page with a fresh browser session: it goes through Entra ID."""
    driver.delete_all_cookies()
    driver.get(base + path)
    WebDriverWait(driver, 20).until(
        lambda d: (
            (d.current_url.startswith(base) and "/signin" not in d.current_url)
            or "AADSTS" in d.page_source
            or d.find_elements(By.CSS_SELECTOR, ".problem")
        )
    )


def test_a_tenant_user_signs_in_through_entra_and_lands_where_they_were_going(
    simulator: SimulatorHandle, azurite: Azurite, browser: Any
) -> None:
    with entra_console(simulator, azurite) as base:
        callback = f"{base}/signin/callback"
        simulator.control.sign_in_setup(redirect_uris=[callback], roles=["Viewer"])
        simulator.control.requests(clear=True)
        open_signed_in(browser, base, "/errors")
        WebDriverWait(browser, 10).until(ready.presence_of_element_located((By.TAG_NAME, "main")))
        assert urlsplit(browser.current_url).path == "/errors"
        assert browser.find_element(By.CSS_SELECTOR, "form.signout .muted").text == USER
        screenshot(browser, "signin-entra.png")
        # What Entra ID saw: the authorization request (PKCE, the registered redirect URI,
        # the OpenID scopes) and one code redemption.
        log = simulator.control.requests()
        (authorize,) = [r for r in log if "/oauth2/v2.0/authorize" in str(r.get("path"))]
        query = parse_qs(urlsplit(f"?{authorize.get('query', '')}").query)
        assert query["redirect_uri"] == [callback]
        assert query["code_challenge_method"] == ["S256"]
        assert "openid" in query["scope"][0].split()
        # No secret, code or token in what the browser holds as a page.
        page = browser.page_source
        secret = simulator.env["DATAVERSE_CLIENT_SECRET"]
        assert secret not in page and "code=" not in browser.current_url


def test_only_the_allowed_group_gets_in(
    simulator: SimulatorHandle, azurite: Azurite, browser: Any
) -> None:
    with entra_console(simulator, azurite, group=GROUP) as base:
        simulator.control.sign_in_setup(
            redirect_uris=[f"{base}/signin/callback"], groups=[], roles=["Viewer"]
        )
        open_signed_in(browser, base, "/")
        assert "not in the group allowed to use the acctsync console" in browser.page_source
        assert not browser.find_elements(By.CSS_SELECTOR, "form.signout .muted")
        simulator.control.sign_in_setup(
            redirect_uris=[f"{base}/signin/callback"],
            groups=["another-group", GROUP],
            roles=["Viewer"],
        )
        open_signed_in(browser, base, "/")
        assert browser.find_element(By.CSS_SELECTOR, "form.signout .muted").text == USER


def test_a_redirect_uri_not_registered_is_refused_by_entra_naming_it(
    simulator: SimulatorHandle, azurite: Azurite, browser: Any
) -> None:
    # The admin registered the app's URL without the callback path: Entra ID says which
    # redirect URI to add (docs/deploy.md tells them the same).
    with entra_console(simulator, azurite) as base:
        simulator.control.sign_in_setup(redirect_uris=[base])
        open_signed_in(browser, base, "/")
        assert "AADSTS50011" in browser.page_source
        assert f"{base}/signin/callback" in browser.page_source


def test_a_callback_not_of_this_sign_in_gets_no_session(
    simulator: SimulatorHandle, azurite: Azurite
) -> None:
    with entra_console(simulator, azurite) as base:
        simulator.control.sign_in_setup(
            redirect_uris=[f"{base}/signin/callback"], roles=["Operator"]
        )
        with httpx.Client(base_url=base, verify=simulator.ssl_context()) as client:
            # A callback with no sign-in started in this browser.
            stray = client.get("/signin/callback", params={"code": "0.Ax", "state": "s"})
            assert stray.status_code == 403 and "started elsewhere" in stray.text
            # A sign-in started here, answered with another sign-in's state.
            begun = client.get("/signin", follow_redirects=False)
            assert begun.status_code == 303
            location = begun.headers["location"]
            assert location.startswith(simulator.env["DATAVERSE_AUTHORITY_HOST"])
            assert simulator.env["DATAVERSE_CLIENT_SECRET"] not in location
            forged = client.get("/signin/callback", params={"code": "0.Ax", "state": "forged"})
            assert forged.status_code == 403 and "another sign-in" in forged.text
            assert "acctsync_session" not in forged.headers.get("set-cookie", "")
            # The real answer, redeemed once; a replay of the same code is refused.
            answer = httpx.get(location, verify=simulator.ssl_context(), follow_redirects=False)
            assert answer.status_code == 302
            back = urlsplit(answer.headers["location"])
            signed_in = client.get(f"{back.path}?{back.query}")
            assert signed_in.status_code == 200 and "Signed in" in signed_in.text
            (cookie,) = [
                c.lower()
                for c in signed_in.headers.get_list("set-cookie")
                if c.startswith("acctsync_session=")
            ]
            assert "httponly" in cookie and "samesite=strict" in cookie
            # The same answer again (a reload, a stolen URL): the sign-in it belonged to is
            # over, so it is refused before its code is even offered to Entra ID.
            replayed = client.get(f"{back.path}?{back.query}")
            assert replayed.status_code == 403 and "started elsewhere" in replayed.text
            # And Entra ID itself redeems a code only once.
            code = parse_qs(back.query)["code"][0]
            again = httpx.post(
                f"{location.split('/oauth2/')[0]}/oauth2/v2.0/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": simulator.env["DATAVERSE_CLIENT_ID"],
                    "client_secret": simulator.env["DATAVERSE_CLIENT_SECRET"],
                    "redirect_uri": f"{base}/signin/callback",
                },
                verify=simulator.ssl_context(),
            )
            assert again.status_code == 400 and "AADSTS70008" in again.json()["error_description"]


def test_wrong_keys_in_a_row_make_the_address_wait_even_with_the_right_key(
    simulator: SimulatorHandle, azurite: Azurite
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AzureWebJobsStorage", azurite.connection_string)
        env.delenv("CONSOLE_ENTRA_CLIENT_ID", raising=False)
        reset_services()
        started = utcnow()
        with (
            serving_api(API_KEY, port=free_port()) as base,
            httpx.Client(base_url=base) as client,
        ):

            def sign_in(key: str, page: httpx.Response) -> httpx.Response:
                found = re.search(r'name="csrf" value="([^"]+)"', page.text)
                assert found, page.text
                return client.post("/signin", data={"csrf": found[1], "next": "/", "key": key})

            page = client.get("/signin")
            for _ in range(5):
                page = sign_in("not-the-key", page)
                assert page.status_code == 401 and "That is not the key" in page.text
            held = sign_in(API_KEY, page)
            assert held.status_code == 429 and "Too many wrong keys" in held.text
            assert 0 < int(held.headers["retry-after"]) <= 60
            assert "acctsync_session" not in held.cookies
            # Each wrong key is a refused sign-in in the audit trail; the key tried is not.
            tried = [e for e in get_services().audit.every(since=started)]
            assert [(e.action.value, e.outcome.value) for e in tried] == [
                ("sign_in", "refused")
            ] * 5
            assert all("wrong key" in (e.detail or "") for e in tried)
            assert "not-the-key" not in str([e.to_json() for e in tried])
        reset_services()
