"""The console for people who think in account names (issue 24 item 7), in a real browser:
the API docs render with the network cut."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.conftest import Stack, chromium

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
