"""Bearer tokens for Dataverse, one provider per way of signing in.

- client credentials (an app registration's secret) and ROPC (a sync user's password), through
  one long-lived msal application and its token cache;
- the Function App's managed identity, through azure-identity: no secret anywhere, the
  identity itself is the Dataverse application user.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import msal

from shared.dataverse.problems import DataverseAuthError
from shared.settings import DataverseConnection, DataverseSettings


class Tokens(Protocol):
    def token(self) -> str:
        """A bearer token for the Dataverse environment (cached while it is valid)."""
        ...

    def discard(self, token: str) -> None:
        """Forget a token Dataverse refused, so the next call fetches a fresh one."""
        ...


def token_provider(settings: DataverseSettings, http: httpx.Client) -> Tokens:
    if settings.connection is DataverseConnection.MANAGED_IDENTITY:
        return ManagedIdentityTokens(settings)
    return EntraTokens(settings, http)


class EntraTokens:
    """Client credentials or ROPC, through msal (its cache refreshes before expiry)."""

    def __init__(self, settings: DataverseSettings, http: httpx.Client):
        self._settings = settings
        self._scopes = [f"{settings.url}/.default"]
        authority = f"{settings.authority_host}/{settings.tenant_id}"
        self._lock = threading.Lock()
        self._app: msal.ClientApplication
        # msal asks the authority for its OpenID configuration right here, over TLS.
        try:
            self._app = self._application(settings, authority, http)
        except ValueError as error:
            # msal found no OpenID configuration: the authority answered that the tenant does
            # not exist (AADSTS90002) — or the authority is not one at all.
            unknown = "authority configuration" in str(error)
            raise DataverseAuthError(
                f"Entra ID at {settings.authority_host} knows no tenant {settings.tenant_id}"
                if unknown
                else f"msal refused the authority {authority}: {error}",
                code="90002" if unknown else None,
            ) from None

    @staticmethod
    def _application(
        settings: DataverseSettings, authority: str, http: httpx.Client
    ) -> msal.ClientApplication:
        if settings.client_secret is not None:
            return msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=settings.client_secret,
                authority=authority,
                http_client=http,
                instance_discovery=is_public_cloud(settings.authority_host),
            )
        return msal.PublicClientApplication(
            settings.client_id,
            authority=authority,
            http_client=http,
            instance_discovery=is_public_cloud(settings.authority_host),
        )

    def token(self) -> str:
        with self._lock:
            result = self._acquire()
        if not result or "access_token" not in result:
            error = (result or {}).get("error", "no_token")
            description = str((result or {}).get("error_description", "")).split("\r\n")[0]
            codes = (result or {}).get("error_codes") or [None]
            raise DataverseAuthError(
                f"Entra ID refused the Dataverse credentials ({error}): {description}",
                code=str(codes[0]) if codes[0] is not None else None,
            )
        return str(result["access_token"])

    def discard(self, token: str) -> None:
        with self._lock:
            cache = self._app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if item.get("secret") == token:
                    cache.remove_at(item)

    def _acquire(self) -> dict[str, Any] | None:
        settings = self._settings
        if settings.username is None:
            assert isinstance(self._app, msal.ConfidentialClientApplication)
            return self._app.acquire_token_for_client(scopes=self._scopes)  # type: ignore[no-any-return]
        # ROPC: the cache first (msal refreshes with the refresh token), the password last.
        accounts = self._app.get_accounts(username=settings.username)
        if accounts:
            result = self._app.acquire_token_silent(self._scopes, account=accounts[0])
            if result:
                return result  # type: ignore[no-any-return]
        return self._app.acquire_token_by_username_password(  # type: ignore[no-any-return]
            settings.username, settings.password or "", scopes=self._scopes
        )


class ManagedIdentityTokens:
    """The Function App's (user-assigned) managed identity, through azure-identity: it asks
    the platform's identity endpoint, and caches the token until shortly before it expires."""

    def __init__(self, settings: DataverseSettings):
        self._scope = f"{settings.url}/.default"
        self._client_id = settings.client_id or None
        self._lock = threading.Lock()
        self._credential = self._new_credential()

    def _new_credential(self) -> Any:
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=self._client_id)

    def token(self) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        with self._lock:
            credential = self._credential
        try:
            return str(credential.get_token(self._scope).token)
        except ClientAuthenticationError as error:  # CredentialUnavailableError included
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise DataverseAuthError(
                f"the managed identity got no Dataverse token ({type(error).__name__}: {first}). "
                "Check that the identity is assigned to the Function App, that DATAVERSE_CLIENT_ID "
                "is its client ID, and that it is an application user of the environment."
            ) from None

    def discard(self, token: str) -> None:
        # A fresh credential holds no cached token: the next call asks the endpoint again.
        with self._lock:
            self._credential = self._new_credential()


def is_public_cloud(authority_host: str) -> bool:
    # Instance discovery asks Microsoft's public cloud about the host; a sovereign or test
    # authority must skip it, the public one keeps msal's default.
    return urlsplit(authority_host).hostname == "login.microsoftonline.com"
