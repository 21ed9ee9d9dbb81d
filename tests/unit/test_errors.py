"""Every error shared/ defines derives from the product's one root error, AcctsyncError, so a
caller can tell acctsync's own refusals from a bug with one `except`."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import shared
from shared.errors import AcctsyncError
from shared.ids import InvalidId, parse_guid
from shared.sync.lease import LeaseLost

# The console's control flow, not errors: each is caught by the web layer and turned into a
# redirect to sign-in, or a page that says what to do, and never leaves it.
CONTROL_FLOW = frozenset(
    {
        "shared.web.console.pages.SignInRequired",
        "shared.web.console.pages.FormRefused",
        "shared.web.console.pages.RoleRefused",
        "shared.web.console.entra.SignInRefused",
        "shared.web.console.entra.NoRole",
    }
)


def _errors_defined_in_shared() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(shared.__path__, prefix="shared."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            defined_here = inspect.isclass(value) and value.__module__ == module.__name__
            if defined_here and issubclass(value, BaseException):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_error_in_shared_derives_from_the_root_error() -> None:
    errors = _errors_defined_in_shared()
    assert "shared.sync.batches.BadBatch" in errors  # the walk reaches the packages
    strays = sorted(
        name
        for name, error in errors.items()
        if name not in CONTROL_FLOW and not issubclass(error, AcctsyncError)
    )
    assert strays == []


def test_the_allow_lists_name_only_errors_that_exist() -> None:
    errors = _errors_defined_in_shared()
    assert errors.keys() >= CONTROL_FLOW


def test_an_error_keeps_the_base_its_callers_catch() -> None:
    with pytest.raises(ValueError, match="is not a GUID"):
        parse_guid("not-a-guid")
    assert issubclass(InvalidId, AcctsyncError)
    assert issubclass(LeaseLost, RuntimeError)
