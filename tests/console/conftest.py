"""One stack for the console's browser tests: Azurite and the simulator after real cycles,
the local host's app on a free port, and one headless Chromium (Debian's, through its own
chromedriver: Selenium Manager never runs, nothing is downloaded)."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acctsync.azurite import Azurite
from acctsync.localhost import serving_api
from acctsync.ports import free_port
from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services, get_services, reset_services
from shared.state.summary import CycleSummary
from shared.state.sync_errors import ErrorCode
from tests.utils.helpers import API_KEY, make_account, wipe_storage

webdriver = pytest.importorskip("selenium.webdriver")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip(
        "Debian's chromium and chromium-driver are not installed (make test installs them)",
        allow_module_level=True,
    )

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
PLANTED_ID = "5f0c2d2e-planted-row"


@dataclass
class Stack:
    base: str
    services: Services
    simulator: SimulatorHandle
    account_id: str
    contacts: list[str]
    cycles: list[CycleSummary]
    downloads: Path


@pytest.fixture(scope="module")
def stack(
    simulator: SimulatorHandle, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as env:
        wipe_storage(azurite.connection_string)
        simulator.control.reset()
        simulator.control.clear_faults()
        for name, value in simulator.env.items():
            if name.startswith("DATAVERSE_"):
                env.setenv(name, value)
        env.setenv("AzureWebJobsStorage", azurite.connection_string)
        env.setenv("SYNC_INTERVAL_MINUTES", "0")
        env.delenv("CONSOLE_ENTRA_CLIENT_ID", raising=False)
        reset_services()
        services = get_services()
        account_id, contacts = make_account(simulator, "Contoso", 12, revenue=25000.0)
        first = run_cycle_now(services)  # the first load
        simulator.control.update_account(account_id, {"name": "Contoso Ltd"})
        second = run_cycle_now(services)  # a change: an activity per contact
        services.errors.record(
            entity="contact",
            record_id=PLANTED_ID,
            operation="update",
            message="a planted value the mirror cannot hold: lastname over 64 KiB",
            cycle_id=second.cycle_id,
            code=ErrorCode.UNSTORABLE_VALUE,
        )
        with serving_api(API_KEY, port=free_port()) as base:
            yield Stack(
                base,
                services,
                simulator,
                account_id,
                contacts,
                [second, first],
                tmp_path_factory.mktemp("downloads"),
            )
        reset_services()


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Any]:
    with chromium(stack.downloads) as driver:
        yield driver


@contextlib.contextmanager
def chromium(
    downloads: Path, *, home: Path | None = None, arguments: tuple[str, ...] = ()
) -> Iterator[Any]:
    """A headless Chromium through Debian's chromedriver; `home`: its HOME, whose NSS
    database (.pki/nssdb) holds the certificates it trusts beyond the system's; `arguments`:
    more command-line switches (e.g. a network cut to loopback)."""
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(shutil.which("chromium"))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--disable-gpu", "--no-first-run",
                     *arguments):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    env = {**os.environ, "HOME": str(home)} if home is not None else None
    service = Service(executable_path=shutil.which("chromedriver"), env=env)
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> None:
    """Keep a picture of the page for docs/console: the whole page, up to 2,400 px high."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": {**clip, "scale": 1}},
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / name).write_bytes(base64.b64decode(shot["data"]))
