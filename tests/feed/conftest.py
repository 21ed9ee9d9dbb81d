"""The feed tests' storage: acctsync's services on an empty Azurite, without Dataverse."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.services import Services, get_services, reset_services
from tests.utils.feed import SETTLE_S
from tests.utils.helpers import API_KEY


@pytest.fixture
def mirror(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The process-wide services (what the API serves) on an empty Azurite."""
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)
    monkeypatch.setenv("ACTIVITY_CONTACT_LIMIT", "5000")
    monkeypatch.setenv("ACCTSYNC_FEED_SETTLE_SECONDS", str(SETTLE_S))
    reset_services()
    yield get_services()
    reset_services()


@pytest.fixture
def feed_api(api_base: str, mirror: Services) -> Iterator[httpx.Client]:
    """A client of the local host's API (with the key) serving `mirror`."""
    with httpx.Client(
        base_url=api_base, headers={"x-functions-key": API_KEY}, timeout=120
    ) as client:
        yield client
