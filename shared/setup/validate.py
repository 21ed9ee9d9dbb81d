"""`acctsync validate` (Marketo's "Validate Sync", Heroku Connect's `diagnose`): one row per
check of the set-up, each with pass, warn or fail and the exact fix. It builds its own clients
from the settings, so a token is really asked for and nothing cached hides a broken set-up.

Order: settings; then Dynamics (shared/setup/dynamics.py); then the storage account, its
poison queue, whether the heartbeat is alive, and what the last verify of the mirror found
(read from storage: validate stays fast and does not compare the mirror again).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from azure.core.exceptions import AzureError

from shared.services import Services
from shared.settings import Settings, SettingsError
from shared.setup.dynamics import DynamicsChecks
from shared.setup.report import CheckResult, CheckStatus, failed, not_checked, passed, warned
from shared.state.field_selections import FieldSelection, Table
from shared.storage import POISON_QUEUE
from shared.sync.health import STALLED_MARGIN, Verdict
from shared.sync.status import sync_health
from shared.times import iso, utcnow
from shared.verify.result import drift_in_words

# The checks after `settings`, in the order they run and print.
AFTER_SETTINGS = (
    "entra_token",
    "dataverse_url",
    "privileges",
    "change_tracking",
    "retention",
    "storage",
    "columns",
    "poison",
    "heartbeat",
    "mirror_verified",
)
VERIFY_FIX = "run `acctsync verify --repair` (or POST /api/sync/verify with repair)"
STORAGE_FIX = (
    "check AzureWebJobsStorage: locally, start Azurite (`make run` does); in Azure, give the "
    "Function App's identity Storage Blob, Queue and Table Data Contributor on the account"
)

MISSING_STORAGE_FIX = (
    "locally, start the host once (`acctsync run`): it creates them; in Azure, "
    "`azd provision` creates them (the app's identity may not)"
)
POISON_FIX = (
    "`acctsync status` shows why (last_errors); fix that, then `acctsync replay-poison` "
    "applies them again"
)


def validate(load_settings: Callable[[], Settings] = Settings.from_env) -> list[CheckResult]:
    try:
        settings = load_settings()
        dataverse = settings.require_dataverse()
    except SettingsError as error:
        results = [failed("settings", str(error).splitlines()[0], str(error))]
        return results + [not_checked(name, "settings") for name in AFTER_SETTINGS]
    results = [
        passed(
            "settings",
            f"DATAVERSE_URL {dataverse.url}, signing in with {dataverse.connection.value}, "
            f"a cycle every {settings.sync_interval_minutes:g} minutes",
        )
    ]
    services = Services(settings)
    try:
        storage = _storage(services)
        readable = storage.status is not CheckStatus.FAIL
        dynamics = DynamicsChecks(
            dataverse,
            selection=(lambda: _selections(services)) if readable else None,
            cursors=lambda: services.cursors.all() if readable else [],
            interval_minutes=settings.sync_interval_minutes,
        ).run()
        columns = dynamics.pop()  # it reads the selection from storage: after that check
        results += [*dynamics, storage, columns]
        if not readable:
            after_storage = ("poison", "heartbeat", "mirror_verified")
            return results + [not_checked(n, "storage") for n in after_storage]
        results.append(_poison(services))
        results.append(_heartbeat(services))
        results.append(_verified(services))
    finally:
        services.close()
    return results


def _selections(services: Services) -> tuple[FieldSelection | None, FieldSelection | None]:
    return services.fields.get(Table.ACCOUNT), services.fields.get(Table.CONTACT)


def _storage(services: Services) -> CheckResult:
    try:
        missing = services.storage.missing()
    except AzureError as error:
        detail = f"the storage account did not answer: {type(error).__name__}"
        return failed("storage", detail, STORAGE_FIX)
    return _failed_when(
        "storage",
        f"missing: {', '.join(missing)}" if missing else None,
        fix=MISSING_STORAGE_FIX,
        otherwise="reachable; the tables and queues are all there",
    )


def _poison(services: Services) -> CheckResult:
    count = services.storage.queue_length(POISON_QUEUE)
    return _failed_when(
        "poison",
        f"{count} batches could not be applied and wait in {POISON_QUEUE}" if count else None,
        fix=POISON_FIX,
        otherwise="the poison queue is empty",
    )


def _failed_when(check: str, problem: str | None, *, fix: str, otherwise: str) -> CheckResult:
    """A check that fails with `problem` and `fix` when there is a problem, else passes."""
    return failed(check, problem, fix) if problem else passed(check, otherwise)


def _heartbeat(services: Services) -> CheckResult:
    now = utcnow()
    state = services.schedule.read()
    pause = services.pauses.get()
    if pause is not None:
        since = now - pause.since
        detail = f"the sync is paused since {iso(pause.since)} ({_minutes(since)}, by {pause.by})"
        return warned("heartbeat", detail, "`acctsync resume` (or POST /api/sync/resume)")
    if not state.cycle_id:
        detail = "no cycle has run yet"
        fix = (
            "start the host: `make run` locally, or deploy the Function App (its timer starts "
            "the first cycle); `acctsync cycle` runs one now"
        )
        return warned("heartbeat", detail, fix)
    health = sync_health(services, state, now, last_applied=None)
    if health.verdict is not Verdict.HEALTHY:
        fix = health.fix or (
            "check that the host runs (`acctsync run` locally; in Azure, the Function App is "
            "started and its timer trigger listed), then `acctsync status`"
        )
        return failed("heartbeat", health.why or health.verdict.value, fix)
    allowed = timedelta(minutes=services.settings.sync_interval_minutes) + STALLED_MARGIN
    if state.succeeded_at is None:
        return passed("heartbeat", "the first cycle is running")
    return passed(
        "heartbeat",
        f"the last cycle succeeded {_minutes(now - state.succeeded_at)} ago, within the "
        f"{_minutes(allowed)} allowed",
    )


def _verified(services: Services) -> CheckResult:
    """Whether the last verify found the mirror equal to Dynamics, and recently enough."""
    hours = services.settings.verify_interval_hours
    off = "scheduled verifies are off (VERIFY_INTERVAL_HOURS=0)"
    last = services.verifies.last()
    if last is None:
        detail = "no verify has run yet" + (f"; {off}" if hours <= 0 else "")
        return warned("mirror_verified", detail, "run `acctsync verify`")
    ago = f"{iso(last.finished_at)} ({_minutes(utcnow() - last.finished_at)} ago)"
    if last.drift_left:
        found = ", ".join(drift_in_words(last))
        detail = f"the verify of {ago} left {last.drift_left:,} records unlike Dynamics: {found}"
        return failed("mirror_verified", detail, VERIFY_FIX)
    if last.error:
        detail = f"the verify of {ago} did not finish: {last.error}"
        return warned("mirror_verified", detail, "fix that, then run `acctsync verify`")
    if hours <= 0:
        detail = f"the mirror equaled Dynamics at the verify of {ago}, but {off}"
        fix = "set VERIFY_INTERVAL_HOURS (24 by default), or run `acctsync verify` now and then"
        return warned("mirror_verified", detail, fix)
    allowed = timedelta(hours=2 * hours)
    if utcnow() - last.finished_at > allowed:
        detail = f"the last verify was {ago}: more than 2 x VERIFY_INTERVAL_HOURS"
        fix = (
            "check that the heartbeat runs and the sync is not paused (scheduled verifies wait "
            "while it is), then run `acctsync verify`"
        )
        return warned("mirror_verified", detail, fix)
    return passed(
        "mirror_verified",
        f"the mirror equaled Dynamics at the verify of {ago}, within the {_minutes(allowed)} "
        "allowed",
    )


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
