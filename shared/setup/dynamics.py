"""The Dynamics side of `acctsync validate`: signing in, the environment, the sync user's
privileges, change tracking and its retention, and the selected columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from shared.dataverse.client import DataverseClient
from shared.dataverse.columns import CONTACT_COLUMNS, SecuredGrants, TableColumns, describe
from shared.dataverse.problems import ChangeTrackingDisabled, DataverseAuthError, DataverseError
from shared.dataverse.signin_failures import APPLICATION_USER_FIX, NOT_A_MEMBER, sign_in_fix
from shared.settings import DataverseConnection, DataverseSettings
from shared.setup.report import CheckResult, failed, not_checked, passed, warned
from shared.state.cursors import Cursor
from shared.state.field_selections import FieldSelection
from shared.sync.select_fields import HOW_TO_SELECT
from shared.times import utcnow

TABLES = ("account", "contact")
AFTER_SIGN_IN = ("dataverse_url", "privileges", "change_tracking", "retention", "columns")
READ_PRIVILEGES = {"account": "prvReadAccount", "contact": "prvReadContact"}
WRITE_VERBS = ("prvCreate", "prvWrite", "prvDelete", "prvAssign", "prvShare", "prvAppend")
GLOBAL_DEPTH = ("Global", 3)  # PrivilegeDepth: JSON names the member, or its number
ROLE_FIX = (
    "give the sync user a security role with Read on Account and Contact at Organization "
    "level (a copy of 'Basic User' with those two set to Organization is enough); change "
    "tracking reads every row only with organization-wide read"
)
AUTHORITY_FIX = (
    "check DATAVERSE_AUTHORITY_HOST and that this machine reaches it; behind a "
    "TLS-inspecting proxy, set DATAVERSE_CA_BUNDLE to its CA certificate"
)
RETENTION_FIX = (
    "raise the retention (Power Platform admin center, or the organization's "
    "expirechangetrackingindays), or lower SYNC_INTERVAL_MINUTES"
)
_CONNECTIONS = {
    DataverseConnection.CLIENT_SECRET: "client credentials (an app registration's secret)",
    DataverseConnection.ROPC: "the sync user's password (ROPC)",
    DataverseConnection.MANAGED_IDENTITY: "the Function App's managed identity",
}


class DynamicsChecks:
    """The Dynamics checks in order; each one that depends on an earlier one is not run when
    that one failed. Signing in and WhoAmI give the client and user the others need; each of
    the others is a function of its own below."""

    def __init__(
        self,
        settings: DataverseSettings,
        *,
        selection: Callable[[], tuple[FieldSelection | None, FieldSelection | None]] | None,
        cursors: Callable[[], list[Cursor]],
        interval_minutes: float,
    ):
        self.settings = settings
        self.selection = selection
        self.cursors = cursors
        self.interval_minutes = interval_minutes
        self.results: list[CheckResult] = []

    def run(self) -> list[CheckResult]:
        client = self._signed_in()
        if client is None:
            self.results += [not_checked(name, "entra_token") for name in AFTER_SIGN_IN]
            return self.results
        with client:
            user_id = self._who_am_i(client)
            if user_id is None:
                self.results += [not_checked(name, "dataverse_url") for name in AFTER_SIGN_IN[1:]]
                return self.results
            self.results.append(_guarded("privileges", lambda: privileges(client, user_id)))
            tracking, tables = change_tracking(client)
            self.results.append(tracking)
            interval = self.interval_minutes
            self.results.append(
                _guarded(
                    "retention", lambda: retention(client, self.cursors, interval_minutes=interval)
                )
            )
            self.results.append(self._columns(client, tables))
        return self.results

    def _signed_in(self) -> DataverseClient | None:
        how = _CONNECTIONS[self.settings.connection]
        try:
            client = DataverseClient(self.settings)
            client.transport.sign_in()
        except DataverseAuthError as error:
            self.results.append(failed("entra_token", _first_line(error), sign_in_fix(error)))
            return None
        except DataverseError as error:
            self.results.append(failed("entra_token", _first_line(error), AUTHORITY_FIX))
            return None
        self.results.append(passed("entra_token", f"Entra ID gave a Dataverse token to {how}"))
        return client

    def _who_am_i(self, client: DataverseClient) -> str | None:
        url = self.settings.url
        try:
            user_id = client.metadata.user_id()
        except DataverseAuthError as error:
            member = error.status == 401 or error.code == NOT_A_MEMBER
            fix = APPLICATION_USER_FIX if member else ROLE_FIX
            self.results.append(failed("dataverse_url", _first_line(error), fix))
            return None
        except DataverseError as error:
            fix = (
                f"DATAVERSE_URL ({url}) does not answer as a Dataverse environment: set it to "
                "the Environment URL in the Power Platform admin center, e.g. "
                "https://contoso.crm.dynamics.com"
            )
            self.results.append(failed("dataverse_url", _first_line(error), fix))
            return None
        self.results.append(
            passed("dataverse_url", f"{url} answers WhoAmI: the sync user is {user_id}")
        )
        return user_id

    def _columns(
        self, client: DataverseClient, tables: Mapping[str, TableColumns] | None
    ) -> CheckResult:
        if tables is None:
            return not_checked("columns", "change_tracking")
        selection = self.selection
        if selection is None:
            return not_checked("columns", "storage")
        return _guarded("columns", lambda: columns(client, tables, *selection()))


def change_tracking(
    client: DataverseClient,
) -> tuple[CheckResult, dict[str, TableColumns] | None]:
    """Whether both tables exist and track changes, with their columns when they do."""
    try:
        definitions = client.metadata.table_definitions(list(TABLES))
    except DataverseError as error:
        return failed("change_tracking", _first_line(error), ROLE_FIX), None
    tables = {name: describe(name, d) for name, d in definitions.items()}
    missing = [t for t in TABLES if t not in tables]
    off = [t for t in TABLES if t in tables and not tables[t].change_tracking]
    if missing:
        detail = f"Dataverse has no {' or '.join(missing)} table"
        fix = "point DATAVERSE_URL at a Dynamics 365 environment (with Sales or Marketing)"
        return failed("change_tracking", detail, fix), None
    if off:
        fix = "; ".join(ChangeTrackingDisabled(t).fix for t in off)
        detail = f"change tracking is off on {' and '.join(off)}: acctsync reads only changes"
        return failed("change_tracking", detail, fix), None
    return passed("change_tracking", "account and contact track changes"), tables


def retention(
    client: DataverseClient, cursors: Callable[[], list[Cursor]], *, interval_minutes: float
) -> CheckResult:
    """Whether the org keeps changes long enough for the cadence and the stored delta links
    (`cursors` reads them from storage: only once the retention itself is long enough)."""
    days = client.metadata.change_tracking_retention_days()
    if not days:
        return warned(
            "retention",
            "the org keeps no change-tracking history (expirechangetrackingindays is 0 or "
            "unset): every delta link may be refused, and each refusal reads a table whole",
            RETENTION_FIX,
        )
    keeps = timedelta(days=days)
    if timedelta(minutes=interval_minutes) * 2 >= keeps:
        detail = (
            f"Dynamics keeps changes {days} days, but a cycle runs only every "
            f"{interval_minutes:g} minutes: delta links expire between cycles"
        )
        return failed("retention", detail, RETENTION_FIX)
    now = utcnow()
    for cursor in cursors():
        age = now - cursor.updated_at
        if age > keeps * 0.8:
            detail = (
                f"the {cursor.entity_set} delta link is {age.days} days old and Dynamics "
                f"keeps changes {days} days: when it expires the table is read again whole"
            )
            return warned("retention", detail, "resume the sync (`acctsync resume`) soon")
    return passed(
        "retention",
        f"Dynamics keeps changes {days} days; a cycle every {interval_minutes:g} "
        "minutes stays well inside (a pause or outage longer than that re-reads in full)",
    )


def columns(
    client: DataverseClient,
    tables: Mapping[str, TableColumns],
    account: FieldSelection | None,
    contact: FieldSelection | None,
) -> CheckResult:
    """Whether the sync user can read every selected column of both tables."""
    grants = SecuredGrants(client)
    problems = [
        f"account.{name} ({why.why})"
        for name, why in _unreadable(tables["account"], account, grants)
    ]
    contact_selection = contact or FieldSelection(dict(CONTACT_COLUMNS))
    problems += [
        f"contact.{name} ({why.why})"
        for name, why in _unreadable(tables["contact"], contact_selection, grants)
    ]
    if problems:
        fix = (
            "the sync goes on without them and keeps their mirrored values; to sync them "
            "again, restore a deleted column or grant read on a secured one; to stop "
            f"syncing an account column, select without it: {HOW_TO_SELECT}"
        )
        return failed("columns", "not readable now: " + "; ".join(problems), fix)
    if account is None:
        detail = "no account columns selected yet: the first cycle selects Marketo's defaults"
    else:
        detail = f"the {len(account.columns)} selected account columns are all readable"
    return passed("columns", detail + f", and the {len(CONTACT_COLUMNS)} contact columns")


def privileges(client: DataverseClient, user_id: str) -> CheckResult:
    held = client.metadata.user_privileges(user_id)
    depth = {str(p.get("PrivilegeName", "")): p.get("Depth") for p in held}
    short = [
        f"Read {table} ({depth.get(name, 'none')})"
        for table, name in READ_PRIVILEGES.items()
        if depth.get(name) not in GLOBAL_DEPTH
    ]
    if short:
        detail = "the sync user lacks organization-wide " + ", ".join(short)
        return failed("privileges", detail, ROLE_FIX)
    writes = sorted(n for n in depth if n.startswith(WRITE_VERBS))
    if writes:
        synced = [n for n in writes if n.endswith(("Account", "Contact"))]
        shown = ", ".join((synced or writes)[:6])
        detail = (
            f"reads account and contact organization-wide, but may also write: {shown}"
            f"{f' and {len(writes) - 6} more' if len(writes) > 6 else ''} "
            "(acctsync never writes; least privilege keeps a leaked credential harmless)"
        )
        fix = (
            "give the sync user a role that only reads (Read on Account and Contact at "
            "Organization level), without create, write, delete, assign, share or append"
        )
        return warned("privileges", detail, fix)
    return passed("privileges", "reads account and contact organization-wide, writes nothing")


def _unreadable(
    table: TableColumns, selection: FieldSelection | None, grants: SecuredGrants
) -> Iterable[tuple[str, Any]]:
    if selection is None:
        return []
    return [(name, why) for name in selection.columns if (why := table.unreadable(name, grants))]


def _guarded(check: str, run: Callable[[], CheckResult]) -> CheckResult:
    try:
        return run()
    except DataverseError as error:
        return failed(check, _first_line(error), ROLE_FIX)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
