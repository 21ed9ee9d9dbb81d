"""A read-only Dataverse Web API client: httpx for requests, tokens from shared/dataverse/auth.py.

It exposes reads only (GETs and token requests); there is no method that writes to Dynamics.
Retries follow Microsoft's guidance: 429 waits for Retry-After, 5xx and transport errors back
off exponentially with full jitter, a 401 refreshes the token once, and errors are recognised
by their Dataverse `error.code`, not only their status.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import httpx
import orjson

from shared import __version__, telemetry
from shared.dataverse.auth import token_provider
from shared.dataverse.errors import (
    ChangeTrackingDisabled,
    DataverseAuthError,
    DataverseError,
    DeltaLinkWithheld,
    DeltaTokenExpired,
    LinkRefused,
    OrgChanged,
)
from shared.ids import parse_guid
from shared.settings import MAX_PAGE_SIZE, DataverseSettings

__all__ = [
    "ChangePage",
    "DataverseAuthError",
    "DataverseClient",
    "DataverseError",
    "DeltaTokenExpired",
    "LinkRefused",
    "OrgChanged",
]

logger = logging.getLogger(__name__)

API_PATH = "/api/data/v9.2/"
EXPIRED_VERSION_STAMP = "0x80044352"
# Service protection codes: request count, execution time, concurrency (Microsoft Learn,
# *Service protection API limits*).
THROTTLE_CODES = frozenset({"0x80072322", "0x80072321", "0x80072326"})
LOOKUP_ANNOTATIONS = (
    "Microsoft.Dynamics.CRM.lookuplogicalname",
    "Microsoft.Dynamics.CRM.associatednavigationproperty",
)
# `<property>@...FormattedValue`: option labels, lookup names, money and dates as the sync
# user's Dynamics shows them (Microsoft Learn, *Formatted values*); for display only.
FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"


def include_annotations(*, formatted: bool) -> str:
    """The Prefer preference of every row read: the lookups' target tables, and the
    formatted values when `formatted` (ACCTSYNC_FORMATTED_VALUES)."""
    annotations = LOOKUP_ANNOTATIONS + ((FORMATTED_VALUE,) if formatted else ())
    return f'odata.include-annotations="{",".join(annotations)}"'


DELETED_ENTITY_SUFFIX = "/$deletedEntity"
# What a column's readability and type take; DisplayName (every language's label) only when
# the columns are listed for a person.
ATTRIBUTE_SELECT = (
    "LogicalName,AttributeType,IsValidForRead,IsValidODataAttribute,IsSecured,AttributeOf,"
    "MetadataId,RequiredLevel"
)
# AttributeType -> (the metadata cast that has its limits, their properties, what to expand).
LIMIT_CASTS: dict[str, tuple[str, str, str]] = {
    "String": ("StringAttributeMetadata", "MaxLength", ""),
    "Memo": ("MemoAttributeMetadata", "MaxLength", ""),
    "Integer": ("IntegerAttributeMetadata", "MinValue,MaxValue", ""),
    "BigInt": ("BigIntAttributeMetadata", "MinValue,MaxValue", ""),
    "Decimal": ("DecimalAttributeMetadata", "MinValue,MaxValue,Precision", ""),
    "Double": ("DoubleAttributeMetadata", "MinValue,MaxValue,Precision", ""),
    "Money": ("MoneyAttributeMetadata", "MinValue,MaxValue,Precision", ""),
    "Picklist": (
        "PicklistAttributeMetadata",
        "",
        "OptionSet($select=Options),GlobalOptionSet($select=Options)",
    ),
    "State": ("StateAttributeMetadata", "", "OptionSet($select=Options)"),
    "Status": ("StatusAttributeMetadata", "", "OptionSet($select=Options)"),
}


@dataclass(frozen=True)
class ChangePage:
    """One page of a change-tracking chain: a next link on every page but the last, which
    has the delta link instead."""

    rows: list[dict[str, Any]]
    deleted_ids: list[str]
    next_link: str | None
    delta_link: str | None


@dataclass(frozen=True)
class RowPage:
    """One page of a plain query: a next link on every page but the last."""

    rows: list[dict[str, Any]]
    next_link: str | None


@dataclass
class RequestStats:
    """What this client sent, for cycle summaries and telemetry."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, *, throttled: bool = False, retry: bool = False) -> None:
        with self._lock:
            self.requests += 1
            self.throttled += int(throttled)
            self.retries += int(retry)
        telemetry.count("acctsync.dataverse_requests", 1)
        telemetry.count("acctsync.dataverse_throttled", int(throttled))


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 300.0


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify against the public roots plus an optional extra CA; verification stays on."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class DataverseClient:
    """Reads accounts, contacts and metadata from one Dataverse environment."""

    def __init__(
        self,
        settings: DataverseSettings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: httpx.Timeout | None = None,
    ):
        self._settings = settings
        self._base = settings.url + API_PATH
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            verify=tls_context(settings.ca_bundle),
            timeout=timeout or httpx.Timeout(120.0, connect=15.0),
            headers={"User-Agent": f"acctsync/{__version__}"},
        )
        try:
            self._tokens = token_provider(settings, self._http)
        except (httpx.TransportError, httpx.TimeoutException) as error:
            self._http.close()
            _raise_if_untrusted(error)
            raise DataverseError(
                f"the Entra ID authority {settings.authority_host} did not answer "
                f"({type(error).__name__}); check DATAVERSE_AUTHORITY_HOST and the network"
            ) from error
        # Parallel requests stay within the server's advertised degree of parallelism.
        self._dop = 4
        self._slots = threading.BoundedSemaphore(self._dop)
        self._throttle = _throttle_of(settings.url)
        self.stats = RequestStats()
        self._user_id: str | None = None
        self._combined_definitions = True
        self._annotations = include_annotations(formatted=settings.formatted_values)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata and identity -------------------------------------------------------------

    def sign_in(self) -> None:
        """Ask Entra ID for a token now (DataverseAuthError when it refuses)."""
        self._tokens.token()

    def who_am_i(self) -> dict[str, Any]:
        return self._get_json(self._base + "WhoAmI")

    def user_id(self) -> str:
        """The sync user's systemuserid (WhoAmI), asked once per client."""
        if self._user_id is None:
            self._user_id = parse_guid(str(self.who_am_i()["UserId"]).lower())
        return self._user_id

    def table_definitions(
        self, tables: Sequence[str], *, labels: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Each table's definition: `ChangeTrackingEnabled` and its columns (`Attributes`), by
        logical name; a table the org does not have is left out.

        One request for every table (a `$filter` on LogicalName with `$expand=Attributes`), so
        the check every cycle makes costs one request. A server that refuses that form is
        asked table by table with the two queries the metadata docs show, from then on."""
        select = ATTRIBUTE_SELECT + (",DisplayName" if labels else "")
        names = [_logical(t) for t in tables]
        if self._combined_definitions:
            try:
                body = self._get_json(
                    self._base + "EntityDefinitions",
                    params={
                        "$select": "LogicalName,ChangeTrackingEnabled",
                        "$filter": " or ".join(f"LogicalName eq '{n}'" for n in names),
                        "$expand": f"Attributes($select={select})",
                    },
                )
                found = {
                    str(d["LogicalName"]): d
                    for d in body.get("value", [])
                    if d.get("LogicalName") in names
                }
                if all("Attributes" in d for d in found.values()):
                    return found
                # A server that ignores $expand: ask the way it surely answers.
                logger.info("EntityDefinitions ignored $expand=Attributes; asking per table")
                self._combined_definitions = False
            except DataverseAuthError:
                raise
            except DataverseError as error:
                if error.status not in (400, 404, 501):
                    raise
                logger.info("EntityDefinitions with $expand refused (%s); asking per table", error)
                self._combined_definitions = False
        definitions = {}
        for name in names:
            entity = f"{self._base}EntityDefinitions(LogicalName='{name}')"
            try:
                definition = self._get_json(
                    entity, params={"$select": "LogicalName,ChangeTrackingEnabled"}
                )
            except DataverseError as error:
                if error.status == 404:
                    continue
                raise
            attributes = self._get_json(entity + "/Attributes", params={"$select": select})
            definitions[name] = {**definition, "Attributes": attributes.get("value", [])}
        return definitions

    def column_limits(self, table: str) -> dict[str, dict[str, Any]]:
        """The type-specific properties that bound a column's values (MaxLength, MinValue,
        MaxValue, Precision, the options of a choice), by logical name: one cast per
        attribute type, asked side by side."""
        attributes = f"{self._base}EntityDefinitions(LogicalName='{_logical(table)}')/Attributes/"

        def cast(kind: str) -> list[dict[str, Any]]:
            cast_type, select, expand = LIMIT_CASTS[kind]
            params = {"$select": ",".join(filter(None, ("LogicalName", select)))}
            if expand:
                params["$expand"] = expand
            try:
                body = self._get_json(
                    attributes + "Microsoft.Dynamics.CRM." + cast_type, params=params
                )
            except DataverseAuthError:
                raise
            except DataverseError as error:
                # Limits only hold local edits back: without them the edit checks the type.
                logger.warning("no %s limits: %s", kind, error)
                return []
            return list(body.get("value", []))

        limits: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(self._dop, thread_name_prefix="acctsync-metadata") as pool:
            for found in pool.map(cast, LIMIT_CASTS):
                for attribute in found:
                    limits[str(attribute.get("LogicalName", ""))] = attribute
        return limits

    def readable_secured_columns(self, user_id: str) -> set[str]:
        """MetadataIds of the secured columns this user may read through field security."""
        url = (
            f"{self._base}systemusers({parse_guid(user_id)})"
            "/Microsoft.Dynamics.CRM.RetrievePrincipalAttributePrivileges()"
        )
        body = self._get_json(url)
        return {
            str(p["AttributeId"]).lower()
            for p in body.get("AttributePrivileges", [])
            if int(p.get("CanRead", 0)) == 4
        }

    def user_privileges(self, user_id: str) -> list[dict[str, Any]]:
        """The sync user's privileges through its security roles (RetrieveUserPrivileges):
        `{"PrivilegeName", "Depth", ...}` each."""
        url = (
            f"{self._base}systemusers({parse_guid(user_id)})"
            "/Microsoft.Dynamics.CRM.RetrieveUserPrivileges()"
        )
        return list(self._get_json(url).get("RolePrivileges", []))

    def change_tracking_retention_days(self) -> int | None:
        """How many days the org keeps change tracking (`expirechangetrackingindays`): a delta
        link older than that is refused and the table is read again in full."""
        body = self._get_json(
            self._base + "organizations", params={"$select": "expirechangetrackingindays"}
        )
        rows = body.get("value") or [{}]
        days = rows[0].get("expirechangetrackingindays")
        return int(days) if days is not None else None

    def total_records(self, tables: list[str]) -> dict[str, int]:
        """Rows per table (logical names), from RetrieveTotalRecordCount: one request, a count
        Dataverse keeps up to a day old, enough to show how far a full load is."""
        names = orjson.dumps([_logical(t) for t in tables]).decode()
        body = self._get_json(
            self._base + "RetrieveTotalRecordCount(EntityNames=@p1)", params={"@p1": names}
        )
        counts = body.get("EntityRecordCountCollection") or {}
        return {
            str(k): int(v)
            for k, v in zip(counts.get("Keys", []), counts.get("Values", []), strict=False)
        }

    # -- change tracking -------------------------------------------------------------------

    def changes(
        self,
        entity_set: str,
        columns: list[str],
        *,
        link: str | None,
        resume: bool = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[ChangePage]:
        """Pages of a change-tracking chain: the whole table when `link` is None, the changes
        since a delta link, or with `resume` the rest of a chain from one of its next links.
        LinkRefused when Dataverse no longer accepts a link it gave out."""
        size = min(page_size, MAX_PAGE_SIZE)
        if link is None:
            url = self._base + entity_set
            params: dict[str, str] | None = {"$select": ",".join(columns)}
        else:
            self._check_same_origin(link)
            url, params = link, None
        # Follow-up pages: the link as given, with the same page size (PAGE doc).
        follow_up = f"odata.maxpagesize={size},{self._annotations}"
        prefer = follow_up if resume else f"odata.track-changes,{follow_up}"
        while True:
            body = self._get_link(url, params=params, prefer=prefer, given=link is not None)
            rows: list[dict[str, Any]] = []
            deleted: list[str] = []
            for item in body.get("value", []):
                if str(item.get("@odata.context", "")).endswith(DELETED_ENTITY_SUFFIX):
                    deleted.append(str(item["id"]).lower())
                else:
                    rows.append(item)
            next_link = body.get("@odata.nextLink")
            new_delta = body.get("@odata.deltaLink")
            if next_link:
                self._check_same_origin(next_link)
                yield ChangePage(rows, deleted, str(next_link), None)
                url, params, prefer, link = next_link, None, follow_up, next_link
                continue
            if not new_delta:
                if self._settings.formatted_values:
                    # Reported for orgs answering annotations with change tracking (§1.5).
                    raise DeltaLinkWithheld(_table_of(entity_set))
                # What Dataverse does for a table without change tracking: every row, no link.
                raise ChangeTrackingDisabled(_table_of(entity_set))
            self._check_same_origin(new_delta)
            yield ChangePage(rows, deleted, None, str(new_delta))
            return

    # -- plain queries ---------------------------------------------------------------------

    def rows(
        self,
        entity_set: str,
        columns: list[str],
        *,
        where: str | None = None,
        link: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        labels: bool = True,
    ) -> Iterator[RowPage]:
        """Pages of a plain query (no change tracking, so no delta link is touched): the rows
        `where` ($filter) keeps, or with `link` the rest of such a query from one of its next
        links. LinkRefused when Dataverse no longer accepts that link. `labels`: also the
        formatted values (when ACCTSYNC_FORMATTED_VALUES lets them), which a read of keys and
        versions does without."""
        annotations = self._annotations if labels else include_annotations(formatted=False)
        prefer = f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)},{annotations}"
        params: dict[str, str] | None = None
        if link is None:
            url = self._base + entity_set
            params = {"$select": ",".join(columns)}
            if where:
                params["$filter"] = where
        else:
            self._check_same_origin(link)
            url = link
        while True:
            body = self._get_link(url, params=params, prefer=prefer, given=url == link)
            next_link = body.get("@odata.nextLink")
            if next_link:
                self._check_same_origin(next_link)
            yield RowPage(list(body.get("value", [])), str(next_link) if next_link else None)
            if not next_link:
                return
            url, params, link = str(next_link), None, str(next_link)

    def _get_link(
        self, url: str, *, params: dict[str, str] | None, prefer: str, given: bool
    ) -> dict[str, Any]:
        """A page request; a link Dataverse gave out and now refuses is LinkRefused."""
        try:
            return self._get_json(url, params=params, prefer=prefer)
        except (LinkRefused, DataverseAuthError):
            raise
        except DataverseError as error:
            if error.status == 400 and "change tracking" in str(error).lower():
                raise ChangeTrackingDisabled(_table_of(urlsplit(url).path)) from error
            if given and error.status in (400, 404, 410, 412):
                raise LinkRefused(str(error), status=error.status, code=error.code) from error
            raise

    # -- transport -------------------------------------------------------------------------

    def check_stored_link(self, link: str) -> None:
        """A link stored earlier must be of this org; OrgChanged says plainly when not."""
        ours, theirs = urlsplit(self._settings.url), urlsplit(link)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise OrgChanged(theirs.netloc, ours.netloc)

    def _check_same_origin(self, link: str) -> None:
        # Links come from the server; refuse to send our token anywhere else.
        ours, theirs = urlsplit(self._settings.url), urlsplit(link)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise DataverseError(f"Dataverse returned a link to another host: {theirs.netloc}")

    def _get_json(
        self, url: str, *, params: Mapping[str, str] | None = None, prefer: str | None = None
    ) -> dict[str, Any]:
        headers = {
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
            "If-None-Match": "null",
        }
        if prefer:
            headers["Prefer"] = prefer
        refreshed_token = False
        attempt = 0
        while True:
            attempt += 1
            try:
                # The token request goes over the same verified TLS and may fail the same way.
                token = self._tokens.token()
                headers["Authorization"] = f"Bearer {token}"
                with self._slots:
                    # Inside the slot: a request that waited for one must not go out before
                    # a 429 answered meanwhile has been waited out.
                    self._wait_out_throttling()
                    response = self._http.get(url, params=params, headers=headers)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                # An untrusted certificate does not heal by retrying: say so at once.
                _raise_if_untrusted(error)
                self.stats.count(retry=True)
                if attempt >= self._retry.max_attempts:
                    raise DataverseError(
                        f"Dataverse did not answer after {attempt} attempts: {type(error).__name__}"
                    ) from error
                self._backoff(attempt, reason=type(error).__name__)
                continue
            self._learn_parallelism(response)
            status = response.status_code
            if status == 200:
                self.stats.count()
                # orjson: a page of 5,000 rows decodes several times faster than with json.
                body: dict[str, Any] = orjson.loads(response.content)
                return body
            code, message = _error_of(response)
            if status == 429 or code in THROTTLE_CODES:
                self.stats.count(throttled=True, retry=True)
                if attempt >= self._retry.max_attempts:
                    raise DataverseError(
                        f"Dataverse kept throttling ({code}): {message}", status=status, code=code
                    )
                wait = _retry_after(response, self._retry.retry_after_cap_s)
                wait = wait if wait is not None else self._jitter(attempt)
                logger.warning("dataverse throttled (%s); waiting %.1fs", code, wait)
                self._throttle.hold_off(wait)
                continue
            if status == 401 and not refreshed_token:
                # An expired or revoked token: drop it and try once more with a new one.
                self.stats.count(retry=True)
                self._tokens.discard(token)
                refreshed_token = True
                continue
            if status >= 500 and attempt < self._retry.max_attempts:
                self.stats.count(retry=True)
                self._backoff(attempt, reason=f"HTTP {status}")
                continue
            self.stats.count()
            if code == EXPIRED_VERSION_STAMP or "version stamp" in message.lower():
                raise DeltaTokenExpired(message, status=status, code=code)
            if status in (401, 403):
                raise DataverseAuthError(
                    f"Dataverse refused the request ({status} {code}): {message}",
                    status=status,
                    code=code,
                )
            raise DataverseError(
                f"Dataverse answered {status} ({code}): {message}", status=status, code=code
            )

    def _learn_parallelism(self, response: httpx.Response) -> None:
        hint = response.headers.get("x-ms-dop-hint")
        if hint and hint.isdigit() and int(hint) > 0 and int(hint) != self._dop:
            self._dop = int(hint)
            self._slots = threading.BoundedSemaphore(self._dop)

    def _jitter(self, attempt: int) -> float:
        ceiling = min(self._retry.backoff_cap_s, self._retry.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _wait_out_throttling(self) -> None:
        # Again after each wait: a parallel request may have been throttled meanwhile.
        while (left := self._throttle.left()) > 0:
            self._sleep(left)

    def _backoff(self, attempt: int, *, reason: str) -> None:
        wait = self._jitter(attempt)
        logger.warning("dataverse request failed (%s); retry %d in %.2fs", reason, attempt, wait)
        self._sleep(wait)


class _Throttle:
    """When an environment's service protection lets this process send again.

    Dataverse throttles the caller, not one request: after a 429 no request to that
    environment goes out before its Retry-After has passed, from any client of the process
    (parallel requests, and the next heartbeat's client after a cycle gave up)."""

    def __init__(self) -> None:
        self._until = 0.0  # time.monotonic()
        self._lock = threading.Lock()

    def hold_off(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def left(self) -> float:
        return self._until - time.monotonic()


_THROTTLES: dict[str, _Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def _throttle_of(url: str) -> _Throttle:
    with _THROTTLES_LOCK:
        return _THROTTLES.setdefault(url, _Throttle())


def _raise_if_untrusted(error: Exception) -> None:
    reason: str | None = None
    cause: BaseException | None = error
    while cause is not None and reason is None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or str(cause)
        elif "CERTIFICATE_VERIFY_FAILED" in str(cause):
            reason = str(cause)
        cause = cause.__cause__ or cause.__context__
    if reason is None:
        return
    host = "the server"
    with contextlib.suppress(RuntimeError):  # httpx raises when the error has no request
        host = str(error.request.url.host) if isinstance(error, httpx.RequestError) else host
    raise DataverseError(
        f"the TLS certificate of {host} could not be verified ({reason}). acctsync always "
        "verifies certificates: when a private CA or a TLS-inspecting proxy signs it, set "
        "DATAVERSE_CA_BUNDLE to that CA's certificate file."
    ) from error


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code") or ""), str(error.get("message") or "")
    except ValueError:
        return "", response.text[:200]


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    try:
        return min(max(float(raw), 0.0), cap)
    except ValueError:
        return None


def _table_of(entity_set_or_path: str) -> str:
    """The logical name behind an entity set (`accounts` -> `account`), for messages."""
    entity_set = entity_set_or_path.rstrip("/").rsplit("/", 1)[-1]
    return {"accounts": "account", "contacts": "contact"}.get(entity_set, entity_set)


def _logical(name: str) -> str:
    if not name.isidentifier() or not name.islower():
        raise ValueError(f"not a Dataverse logical name: {name!r}")
    return quote(name)
