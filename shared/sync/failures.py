"""What a failed planning step means for the person running the sync, and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import AzureError

from shared.dataverse.problems import DataverseAuthError, DataverseError, NeedsAction
from shared.dataverse.signin_failures import sign_in_fix
from shared.settings import SettingsError


@dataclass(frozen=True)
class Explained:
    message: str
    fix: str
    # Retrying changes nothing until someone acts (a setting, a credential, the org): the
    # next cycle waits a whole interval rather than a minute.
    needs_action: bool
    # An error of a kind acctsync expects says everything in its message; anything else is
    # a defect whose traceback belongs in the logs.
    expected: bool = True


def explain(error: BaseException) -> Explained:
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, NeedsAction):
        return Explained(str(error), error.fix, needs_action=True)
    if isinstance(error, DataverseAuthError):
        return Explained(text, sign_in_fix(error), needs_action=True)
    if isinstance(error, SettingsError):
        return Explained(text, str(error), needs_action=True)
    if isinstance(error, DataverseError):
        return Explained(
            text,
            "the next cycle tries again from where this one stopped; if it keeps failing, "
            "check DATAVERSE_URL, the network and the org's health (`acctsync validate`)",
            needs_action=False,
        )
    if isinstance(error, AzureError):
        return Explained(
            text,
            "check that the storage account in AzureWebJobsStorage (Azurite, locally) is "
            "reachable; the next cycle goes on from where this one stopped",
            needs_action=False,
        )
    return Explained(
        text,
        "an unexpected error: the traceback is in the logs (`acctsync run --verbose` locally); "
        "the next cycle tries again from where this one stopped",
        needs_action=False,
        expected=False,
    )
