"""One settings object, read from the environment the first time it is needed.

Reading settings at import time would turn a missing value into an import error, and an
import error in a Functions app silently removes every function; so nothing here runs until
`get_settings()` is called.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from shared.errors import AcctsyncError

DEFAULT_STORAGE = "UseDevelopmentStorage=true"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# How long a heartbeat holds the cycle lease while it plans; it renews it every third of that.
# A planner that dies keeps the lease until it runs out, so the next heartbeat goes on from
# its last checkpoint at most this long after a crash.
DEFAULT_LEASE_SECONDS = 60.0
# How long one heartbeat plans before it checkpoints and leaves the rest to the next: well
# under functionTimeout (30 min), so a scale-in drain, a redeploy or a crash costs minutes.
DEFAULT_PLAN_BUDGET_SECONDS = 180.0
# Dataverse's odata.maxpagesize ceiling: the one definition, which the client clamps to too.
MAX_PAGE_SIZE = 5000
DEFAULT_ERROR_RETENTION_DAYS = 30.0
# Marketo's custom Dynamics sync filter: the account Two Options column whose explicit No keeps
# an account out of the mirror.
DEFAULT_SYNC_FILTER_COLUMN = "new_synctomkto"
DEFAULT_FEED_SETTLE_SECONDS = 5.0
DEFAULT_FEED_RETENTION_DAYS = 30.0
DEFAULT_VERIFY_INTERVAL_HOURS = 24.0
DEFAULT_AUDIT_RETENTION_DAYS = 365.0


class SettingsError(AcctsyncError, ValueError):
    """A setting is missing or malformed; the message names it and says how to fix it."""


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Where the tables and queues live: a connection string or an identity-based account."""

    connection_string: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    blob_service_uri: str | None = None
    managed_identity_client_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class DataverseSettings:
    url: str
    tenant_id: str
    client_id: str
    client_secret: str | None
    username: str | None
    password: str | None
    authority_host: str
    ca_bundle: str | None
    # The Function App's managed identity is the application user: no secret anywhere.
    managed_identity: bool = False
    # Ask Dataverse for formatted values (option labels, lookup names) beside the raw ones;
    # ACCTSYNC_FORMATTED_VALUES=false for an org that drops the delta link when they are asked.
    formatted_values: bool = True

    @property
    def connection(self) -> DataverseConnection:
        if self.managed_identity:
            return DataverseConnection.MANAGED_IDENTITY
        return DataverseConnection.ROPC if self.username else DataverseConnection.CLIENT_SECRET


class DataverseConnection(StrEnum):
    """How acctsync signs in to Dataverse (what `acctsync validate` names)."""

    CLIENT_SECRET = "client_credentials"  # noqa: S105 (a name, not a secret)
    ROPC = "ropc"
    MANAGED_IDENTITY = "managed_identity"


@dataclass(frozen=True, kw_only=True)
class Settings:
    storage: StorageSettings
    dataverse: DataverseSettings | None
    sync_interval_minutes: float
    activity_contact_limit: int
    api_key: str | None
    plan_budget_seconds: float = DEFAULT_PLAN_BUDGET_SECONDS
    # Dev and tests: ACCTSYNC_LEASE_SECONDS shortens the wait after a crash, ACCTSYNC_PAGE_SIZE
    # asks Dataverse for smaller pages (odata.maxpagesize) so small tables have many.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    page_size: int = MAX_PAGE_SIZE
    # How long the Sync Errors are kept; each finished cycle removes older ones.
    error_retention_days: float = DEFAULT_ERROR_RETENTION_DAYS
    # "" turns the filter off.
    sync_filter_column: str = DEFAULT_SYNC_FILTER_COLUMN
    # How long the change feeds keep their entries (each finished cycle removes older ones);
    # longer than a paging token lives, so a token being followed never points at removed ones.
    feed_retention_days: float = DEFAULT_FEED_RETENTION_DAYS
    # Dev and tests: ACCTSYNC_FEED_SETTLE_SECONDS shortens how long the change feeds wait before
    # they serve an entry (shared/mirror/feed_index.py says why they wait).
    feed_settle_seconds: float = DEFAULT_FEED_SETTLE_SECONDS
    # Hours between two verifies the app runs by itself (0: never), and whether they repair.
    verify_interval_hours: float = DEFAULT_VERIFY_INTERVAL_HOURS
    verify_repair: bool = True
    # How long the audit trail keeps its entries; only the environment sets it, never the
    # product (an admin could otherwise shorten the trail of what they did).
    audit_retention_days: float = DEFAULT_AUDIT_RETENTION_DAYS

    def require_dataverse(self) -> DataverseSettings:
        if self.dataverse is None:
            raise SettingsError(
                "DATAVERSE_URL is not set: set it to your environment URL, e.g. "
                "https://contoso.crm.dynamics.com (or run `acctsync sim` for a local simulator)"
            )
        return self.dataverse

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            storage=_storage_settings(env),
            dataverse=_dataverse_settings(env),
            sync_interval_minutes=_number(env, "SYNC_INTERVAL_MINUTES", 5.0, minimum=0.0),
            activity_contact_limit=int(_number(env, "ACTIVITY_CONTACT_LIMIT", 5000, minimum=0)),
            api_key=_optional(env, "ACCTSYNC_API_KEY"),
            plan_budget_seconds=_number(
                env, "ACCTSYNC_PLAN_BUDGET_SECONDS", DEFAULT_PLAN_BUDGET_SECONDS, minimum=0.0
            ),
            lease_seconds=_number(
                env, "ACCTSYNC_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=1.0
            ),
            page_size=_page_size(env),
            error_retention_days=_number(
                env, "SYNC_ERROR_RETENTION_DAYS", DEFAULT_ERROR_RETENTION_DAYS, minimum=0.0
            ),
            sync_filter_column=_sync_filter_column(env),
            feed_retention_days=_number(
                env, "FEED_RETENTION_DAYS", DEFAULT_FEED_RETENTION_DAYS, minimum=8.0
            ),
            feed_settle_seconds=_number(
                env, "ACCTSYNC_FEED_SETTLE_SECONDS", DEFAULT_FEED_SETTLE_SECONDS, minimum=0.5
            ),
            verify_interval_hours=_number(
                env, "VERIFY_INTERVAL_HOURS", DEFAULT_VERIFY_INTERVAL_HOURS, minimum=0.0
            ),
            verify_repair=_flag(env, "VERIFY_REPAIR", default=True),
            audit_retention_days=_number(
                env, "AUDIT_RETENTION_DAYS", DEFAULT_AUDIT_RETENTION_DAYS, minimum=1.0
            ),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return Settings.from_env()


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; set it to e.g. {default}") from None
    if not math.isfinite(value):  # float() takes nan, inf and 1e309; no setting means them
        raise SettingsError(f"{name}={raw!r} is not a finite number; set it to e.g. {default}")
    if value < minimum:
        raise SettingsError(
            f"{name}={raw!r} must be at least {minimum}; raise it, or unset it for {default}"
        )
    return value


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = _optional(env, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE + _FALSE:
        return raw.lower() in _TRUE
    raise SettingsError(f"{name}={raw!r} is not true or false; set it to true or false")


def _page_size(env: Mapping[str, str]) -> int:
    size = int(_number(env, "ACCTSYNC_PAGE_SIZE", MAX_PAGE_SIZE, minimum=1))
    if size > MAX_PAGE_SIZE:
        raise SettingsError(f"ACCTSYNC_PAGE_SIZE={size} is over Dataverse's {MAX_PAGE_SIZE}")
    return size


def _sync_filter_column(env: Mapping[str, str]) -> str:
    """Set but empty turns the filter off; unset is Marketo's column name."""
    if "SYNC_FILTER_COLUMN" not in env:
        return DEFAULT_SYNC_FILTER_COLUMN
    name = env["SYNC_FILTER_COLUMN"].strip().lower()
    if name and not (name.isascii() and name.isidentifier()):
        raise SettingsError(
            f"SYNC_FILTER_COLUMN={name!r} is not a column logical name; set it to the account "
            f"Two Options column, e.g. {DEFAULT_SYNC_FILTER_COLUMN}, or to empty for no filter"
        )
    return name


def _storage_settings(env: Mapping[str, str]) -> StorageSettings:
    connection = _optional(env, "AzureWebJobsStorage")
    if connection:
        return StorageSettings(connection_string=connection)
    prefix = "AzureWebJobsStorage__"
    account = _optional(env, prefix + "accountName")
    table_uri = _optional(env, prefix + "tableServiceUri")
    queue_uri = _optional(env, prefix + "queueServiceUri")
    blob_uri = _optional(env, prefix + "blobServiceUri")
    if account:
        table_uri = table_uri or f"https://{account}.table.core.windows.net"
        queue_uri = queue_uri or f"https://{account}.queue.core.windows.net"
        blob_uri = blob_uri or f"https://{account}.blob.core.windows.net"
    if table_uri or queue_uri or blob_uri:
        if not (table_uri and queue_uri and blob_uri):
            raise SettingsError(
                "identity-based storage needs AzureWebJobsStorage__tableServiceUri, "
                "__queueServiceUri and __blobServiceUri (or AzureWebJobsStorage__accountName)"
            )
        for name, uri in (
            ("tableServiceUri", table_uri),
            ("queueServiceUri", queue_uri),
            ("blobServiceUri", blob_uri),
        ):
            if urlsplit(uri).scheme != "https":
                raise SettingsError(f"AzureWebJobsStorage__{name} must be an https:// URL")
        client_id = None
        if (_optional(env, prefix + "credential") or "").lower() == "managedidentity":
            client_id = _optional(env, prefix + "clientId")
        return StorageSettings(
            table_service_uri=table_uri,
            queue_service_uri=queue_uri,
            blob_service_uri=blob_uri,
            managed_identity_client_id=client_id,
        )
    return StorageSettings(connection_string=DEFAULT_STORAGE)


def _dataverse_settings(env: Mapping[str, str]) -> DataverseSettings | None:
    url = _optional(env, "DATAVERSE_URL")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise SettingsError(
            f"DATAVERSE_URL={url!r} must be an https:// URL such as https://contoso.crm.dynamics.com"
        )
    ca_bundle = _ca_bundle(env)
    formatted_values = _flag(env, "ACCTSYNC_FORMATTED_VALUES", default=True)
    managed_identity = _uses_managed_identity(env)
    sign_in = _MANAGED_IDENTITY_SIGN_IN if managed_identity else _app_registration_sign_in(env)
    return DataverseSettings(
        url=url.rstrip("/"),
        # Both are checked for an app registration; with a managed identity the client id is a
        # user-assigned identity's, and none means the system-assigned identity.
        tenant_id=_optional(env, "DATAVERSE_TENANT_ID") or "",
        client_id=_optional(env, "DATAVERSE_CLIENT_ID") or "",
        client_secret=sign_in.client_secret,
        username=sign_in.username,
        password=sign_in.password,
        authority_host=sign_in.authority_host,
        ca_bundle=ca_bundle,
        managed_identity=managed_identity,
        formatted_values=formatted_values,
    )


@dataclass(frozen=True, kw_only=True)
class _SignIn:
    """What an app registration signs in with; a managed identity needs none of it."""

    client_secret: str | None = None
    username: str | None = None
    password: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST


_MANAGED_IDENTITY_SIGN_IN = _SignIn()


def _ca_bundle(env: Mapping[str, str]) -> str | None:
    ca_bundle = _optional(env, "DATAVERSE_CA_BUNDLE")
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise SettingsError(
            f"DATAVERSE_CA_BUNDLE={ca_bundle!r} is not a readable file; set it to the path of "
            "the CA certificate (PEM) to trust, or unset it"
        )
    return ca_bundle


def _uses_managed_identity(env: Mapping[str, str]) -> bool:
    credential = (_optional(env, "DATAVERSE_CREDENTIAL") or "").lower()
    if credential and credential != "managedidentity":
        raise SettingsError(
            f"DATAVERSE_CREDENTIAL={credential!r}: set managedidentity, or leave it unset for "
            "the client secret or the ROPC user"
        )
    return credential == "managedidentity"


def _app_registration_sign_in(env: Mapping[str, str]) -> _SignIn:
    missing = [n for n in ("DATAVERSE_TENANT_ID", "DATAVERSE_CLIENT_ID") if not _optional(env, n)]
    username = _optional(env, "DATAVERSE_USERNAME")
    password = _optional(env, "DATAVERSE_PASSWORD")
    secret = _optional(env, "DATAVERSE_CLIENT_SECRET")
    if username is not None and password is None:
        missing.append("DATAVERSE_PASSWORD")
    if username is None and secret is None:
        missing.append("DATAVERSE_CLIENT_SECRET")
    if secret and secret.startswith("@Microsoft.KeyVault("):
        raise SettingsError(
            "DATAVERSE_CLIENT_SECRET still holds an unresolved Key Vault reference: give the "
            "function app's identity the Key Vault Secrets User role and set "
            "keyVaultReferenceIdentity"
        )
    if missing:
        raise SettingsError(f"DATAVERSE_URL is set but {', '.join(missing)} is not; set them too")
    authority = (_optional(env, "DATAVERSE_AUTHORITY_HOST") or DEFAULT_AUTHORITY_HOST).rstrip("/")
    if urlsplit(authority).scheme != "https":
        raise SettingsError(
            "DATAVERSE_AUTHORITY_HOST must be an https:// URL; unset it for "
            f"{DEFAULT_AUTHORITY_HOST}"
        )
    return _SignIn(
        client_secret=secret, username=username, password=password, authority_host=authority
    )
