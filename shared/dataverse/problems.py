"""What can go wrong with Dataverse, as the rest of acctsync tells it apart.

Every message says what happened and what to do; a `NeedsAction` also carries `fix`, the
set-up change that clears it (what `acctsync validate` and the status show)."""

from __future__ import annotations

from shared.errors import AcctsyncError


class DataverseError(AcctsyncError):
    """A Dataverse request failed for good; `code` is the Dataverse error code when known."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class LinkRefused(DataverseError):
    """Dataverse refused a link it gave out earlier (a stored delta or next link): the table's
    chain has to start over with a full re-load."""


class DeltaTokenExpired(LinkRefused):
    """The stored delta link is too old; the table needs a full re-load."""


class DataverseAuthError(DataverseError):
    """Entra ID refused the credentials, or Dataverse refused the token."""


class NeedsAction(DataverseError):
    """A failure that stays until someone changes the set-up; `fix` says what to change."""

    fix: str


class ChangeTrackingDisabled(NeedsAction):
    """A table acctsync reads has change tracking off: it has no delta links to give."""

    def __init__(self, table: str):
        super().__init__(
            f"change tracking is off on the {table} table in Dynamics; acctsync reads only "
            "each table's changes and cannot sync it without"
        )
        self.table = table
        self.fix = (
            f"in Power Apps (make.powerapps.com) open Tables, then the {table} table's "
            "Properties, Advanced options, tick 'Track changes' and save; the next cycle goes on"
        )


class OrgChanged(NeedsAction):
    """A stored link names another Dataverse host than DATAVERSE_URL: the mirror was built from
    another org (or the org moved); syncing on would mix two orgs or loop on refused links."""

    def __init__(self, stored_host: str, configured_host: str):
        super().__init__(
            f"the mirror was built from Dataverse at {stored_host}, but DATAVERSE_URL is now "
            f"{configured_host}"
        )
        self.fix = (
            "if the org only moved to a new URL, run `acctsync reset-cursors` (every table is "
            "read again in full, logging no activity for unchanged values); for a different "
            "org, use a storage account of its own (locally: a fresh .acctsync/), or "
            "`acctsync reset-cursors` to turn this mirror into the new org's"
        )


class DeltaLinkWithheld(NeedsAction):
    """The last page of a change-tracking chain came without a delta link while formatted
    values were asked for too. The table's metadata says change tracking is on (the cycle
    checks it first), and a report says some orgs drop the delta link when annotations are
    asked with change tracking: treating it as "change tracking is off" would send the admin
    to a setting that is already right."""

    def __init__(self, table: str):
        super().__init__(
            f"Dynamics sent the last page of the {table} table's changes without a delta link. "
            "acctsync asked for change tracking together with formatted values (option labels "
            "and lookup names, the OData.Community.Display.V1.FormattedValue annotation), and "
            "some Dynamics orgs are reported to drop the delta link when both are asked; "
            "without it acctsync cannot read only the next changes"
        )
        self.table = table
        self.fix = (
            "set ACCTSYNC_FORMATTED_VALUES=false (the app setting; locally in the environment) "
            "and restart: acctsync then asks for raw values only and shows no labels. If the "
            "error stays, check that 'Track changes' is on in the table's Properties, Advanced "
            f"options in Power Apps (make.powerapps.com) for the {table} table"
        )
