"""The unit tests' guard: they decide without any server, so a test here that asks for a
server fixture, or opens a network connection, fails instead of quietly slowing
`make unit` down."""

from __future__ import annotations

import socket
from typing import Any

import pytest

# The fixtures of tests/conftest.py (and the packages' own) that start or need Azurite, the
# simulator or the local host's API.
SERVER_FIXTURES = frozenset(
    {"azurite", "storage_connection", "simulator", "services", "api_base", "api", "mirror"}
)


class ServerRefused(AssertionError):
    """A unit test reached for a server: it belongs in the package of what it needs."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Refused before any fixture starts (a session's Azurite would start first)."""
    asked = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if asked:
        raise ServerRefused(
            f"tests/unit runs with no server, and {item.name} asks for {sorted(asked)}: "
            "move it next to the tests that use that server"
        )


def _refuse_connection(*_args: Any, **_kwargs: Any) -> None:
    raise ServerRefused(
        "tests/unit runs with no server: move this test next to the tests of what it connects to"
    )


@pytest.fixture(autouse=True)
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse_connection)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse_connection)
