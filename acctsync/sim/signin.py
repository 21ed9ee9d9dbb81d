"""The sign-in half of the Entra ID stand-in: the authorization endpoint of OpenID Connect's
authorization code flow with PKCE, and the redemption of its codes at the token endpoint.

The person who signs in is the tenant's user, as if their browser already held an Entra
session (no password page); tests may name another user of the tenant, with the app roles
assigned to them (the ID token's `roles` claim, present only when they have one, as Entra
sends it) and their groups. Redirect URIs must be registered, as on an app registration's
Authentication page; anything Entra refuses before a redirect (unknown app, unregistered
redirect URI) is an error page, never a redirect, as Entra does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from acctsync.sim.http import Request, Response

if TYPE_CHECKING:
    from acctsync.sim.auth import TokenService

CODE_LIFETIME_S = 600  # Entra's authorization codes last about ten minutes


@dataclass
class SignInSetup:
    """What tests change: the app's registered redirect URIs, the user's groups (the ID
    token's `groups` claim) and, for a guest, the tenant the ID token names; who signs in
    (a display name: another user of the tenant, with an object id of their own; None: the
    sync user) and the values of the app roles assigned to them (`roles`)."""

    redirect_uris: set[str] = field(default_factory=set)
    groups: list[str] = field(default_factory=list)
    tenant_id: str | None = None
    user: str | None = None
    roles: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires_at: float


class CodeFlow:
    def __init__(self, tokens: TokenService):
        self.tokens = tokens
        self.setup = SignInSetup()
        self._codes: dict[str, _Code] = {}

    def authorize(self, request: Request) -> Response:
        """GET /{tenant}/oauth2/v2.0/authorize: a code, back at the redirect URI."""
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        if client_id != self.tokens.credentials.client_id:
            return _page(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tokens.credentials.tenant_domain}'.",
            )
        if redirect_uri not in self.setup.redirect_uris:
            return _page(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. Make sure the "
                "redirect URI sent in the request matches one added to your application in "
                "the Azure portal.",
            )
        if query.get("response_type") != "code":
            return _back(redirect_uri, query, "unsupported_response_type", 700054)
        if "openid" not in query.get("scope", "").split():
            return _back(redirect_uri, query, "invalid_scope", 70011)
        challenge = query.get("code_challenge", "")
        if not challenge or query.get("code_challenge_method") != "S256":
            return _back(redirect_uri, query, "invalid_request", 9002325)
        code = "0.A" + secrets.token_urlsafe(48)
        self._codes[code] = _Code(
            client_id, redirect_uri, challenge, query.get("nonce"), time.time() + CODE_LIFETIME_S
        )
        request.principal = "user"
        answer = {"code": code, "state": query.get("state", ""), "session_state": "sim"}
        return Response(302, headers=[("location", f"{redirect_uri}?{urlencode(answer)}")])

    def redeem(self, request: Request, form: dict[str, str]) -> Response:
        """grant_type=authorization_code: the code (once), its redirect URI and PKCE verifier."""
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires_at <= time.time():
            return self.tokens.error(
                request,
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        if grant.client_id != form.get("client_id") or grant.redirect_uri != form.get(
            "redirect_uri"
        ):
            return self.tokens.error(
                request,
                400,
                "invalid_grant",
                50148,
                "The code_verifier does not match the code_challenge supplied in the "
                "authorization request for PKCE, or the redirect URI differs.",
            )
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        if not hmac.compare_digest(expected, grant.challenge):
            return self.tokens.error(
                request,
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
            )
        request.principal = "user"
        return self.tokens.signed_in(grant.nonce, self.setup)


def _back(redirect_uri: str, query: dict[str, str], error: str, code: int) -> Response:
    """An error Entra reports to the app, at its (registered) redirect URI."""
    answer = {
        "error": error,
        "error_description": f"AADSTS{code}: the authorization request is not valid.",
        "state": query.get("state", ""),
    }
    return Response(302, headers=[("location", f"{redirect_uri}?{urlencode(answer)}")])


def _page(code: int, message: str) -> Response:
    """An error Entra shows in the browser itself."""
    body = (
        "<!doctype html><title>Sign in to your account</title>"
        f"<h1>Sorry, but we're having trouble signing you in.</h1><p>AADSTS{code}: "
        f"{escape(message)}</p>"
    )
    return Response(400, body.encode(), [("content-type", "text/html; charset=utf-8")])
