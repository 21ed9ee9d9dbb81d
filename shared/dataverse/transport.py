"""How acctsync talks to one Dataverse environment: verified TLS, a bearer token from
shared/dataverse/auth.py, retries and service-protection throttling, and refusing to send the
token to any other host.

Retries follow Microsoft's guidance: 429 waits for Retry-After, 5xx and transport errors back
off exponentially with full jitter, a 401 refreshes the token once, and errors are recognised
by their Dataverse `error.code`, not only their status. Only GETs (and the token requests)
go out: nothing here can write to Dynamics.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import certifi
import httpx
import orjson

from shared import __version__, telemetry
from shared.dataverse.auth import token_provider
from shared.dataverse.problems import (
    DataverseAuthError,
    DataverseError,
    DeltaTokenExpired,
    OrgChanged,
)
from shared.settings import DataverseSettings

logger = logging.getLogger(__name__)

API_PATH = "/api/data/v9.2/"
EXPIRED_VERSION_STAMP = "0x80044352"
# Service protection codes: request count, execution time, concurrency.
THROTTLE_CODES = frozenset({"0x80072322", "0x80072321", "0x80072326"})
# Parallel requests stay within the server's advertised degree of parallelism
# (x-ms-dop-hint); this many until it says.
DEFAULT_PARALLELISM = 4
ODATA_HEADERS = {
    "Accept": "application/json",
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "If-None-Match": "null",
}


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

    def jitter(self, attempt: int) -> float:
        """Exponential backoff with full jitter: anywhere up to the attempt's ceiling."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify against the public roots plus an optional extra CA; verification stays on."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    return context


class DataverseTransport:
    """GETs against one environment's Web API, answered as decoded JSON or a typed error."""

    def __init__(
        self,
        settings: DataverseSettings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: httpx.Timeout | None = None,
    ):
        self.settings = settings
        self.base = settings.url + API_PATH
        self.stats = RequestStats()
        self.parallelism = DEFAULT_PARALLELISM
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
        self._slots = threading.BoundedSemaphore(self.parallelism)
        self._throttle = _throttle_of(settings.url)

    def close(self) -> None:
        self._http.close()

    def sign_in(self) -> None:
        """Ask Entra ID for a token now (DataverseAuthError when it refuses)."""
        self._tokens.token()

    def check_stored_link(self, link: str) -> None:
        """A link stored earlier must be of this org; OrgChanged says plainly when not."""
        if (host := _foreign_host(self.settings.url, link)) is not None:
            raise OrgChanged(host, urlsplit(self.settings.url).netloc)

    def check_same_origin(self, link: str) -> None:
        """Links come from the server; refuse to send our token anywhere else."""
        if (host := _foreign_host(self.settings.url, link)) is not None:
            raise DataverseError(
                f"Dataverse returned a link to another host: {host}; acctsync sends its token "
                "only to DATAVERSE_URL: check that DATAVERSE_URL is the environment's own URL"
            )

    def get_json(
        self, url: str, *, params: Mapping[str, str] | None = None, prefer: str | None = None
    ) -> dict[str, Any]:
        """The decoded answer to one GET, after the retries its failures deserve."""
        headers = ODATA_HEADERS | ({"Prefer": prefer} if prefer else {})
        refreshed_token = False
        attempt = 0
        while True:
            attempt += 1
            try:
                # The token request goes over the same verified TLS and may fail the same way.
                token = self._tokens.token()
                response = self._send(url, params, headers | {"Authorization": f"Bearer {token}"})
            except (httpx.TransportError, httpx.TimeoutException) as error:
                self._after_transport_error(error, attempt)
                continue
            status = response.status_code
            if status == 200:
                self.stats.count()
                # orjson: a page of 5,000 rows decodes several times faster than with json.
                body: dict[str, Any] = orjson.loads(response.content)
                return body
            code, message = _error_of(response)
            if status == 429 or code in THROTTLE_CODES:
                self._after_throttled(response, attempt, code=code, message=message)
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
            raise _refusal(status, code=code, message=message)

    def _send(
        self, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> httpx.Response:
        with self._slots:
            # Inside the slot: a request that waited for one must not go out before a 429
            # answered meanwhile has been waited out.
            self._wait_out_throttling()
            response = self._http.get(url, params=params, headers=headers)
        self._learn_parallelism(response)
        return response

    def _after_transport_error(self, error: Exception, attempt: int) -> None:
        # An untrusted certificate does not heal by retrying: say so at once.
        _raise_if_untrusted(error)
        self.stats.count(retry=True)
        if attempt >= self._retry.max_attempts:
            raise DataverseError(
                f"Dataverse did not answer after {attempt} attempts: {type(error).__name__}; "
                "check the network to DATAVERSE_URL, the next cycle tries again"
            ) from error
        self._backoff(attempt, reason=type(error).__name__)

    def _after_throttled(
        self, response: httpx.Response, attempt: int, *, code: str, message: str
    ) -> None:
        self.stats.count(throttled=True, retry=True)
        if attempt >= self._retry.max_attempts:
            raise DataverseError(
                f"Dataverse kept throttling ({code}): {message}; the next cycle goes on where "
                "this one stopped",
                status=response.status_code,
                code=code,
            )
        wait = _retry_after(response, self._retry.retry_after_cap_s)
        wait = wait if wait is not None else self._retry.jitter(attempt)
        logger.warning("dataverse throttled (%s); waiting %.1fs", code, wait)
        self._throttle.hold_off(wait)

    def _learn_parallelism(self, response: httpx.Response) -> None:
        hint = response.headers.get("x-ms-dop-hint")
        if hint and hint.isdigit() and int(hint) > 0 and int(hint) != self.parallelism:
            self.parallelism = int(hint)
            self._slots = threading.BoundedSemaphore(self.parallelism)

    def _wait_out_throttling(self) -> None:
        # Again after each wait: a parallel request may have been throttled meanwhile.
        while (left := self._throttle.left()) > 0:
            self._sleep(left)

    def _backoff(self, attempt: int, *, reason: str) -> None:
        wait = self._retry.jitter(attempt)
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


def _foreign_host(origin: str, link: str) -> str | None:
    """The host of `link` when it is not `origin`'s (scheme and host), else None."""
    ours, theirs = urlsplit(origin), urlsplit(link)
    return None if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc) else theirs.netloc


def _refusal(status: int, *, code: str, message: str) -> DataverseError:
    """The typed error of an answer no retry changes."""
    if code == EXPIRED_VERSION_STAMP or "version stamp" in message.lower():
        return DeltaTokenExpired(message, status=status, code=code)
    if status in (401, 403):
        return DataverseAuthError(
            f"Dataverse refused the request ({status} {code}): {message}",
            status=status,
            code=code,
        )
    return DataverseError(
        f"Dataverse answered {status} ({code}): {message}", status=status, code=code
    )


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
