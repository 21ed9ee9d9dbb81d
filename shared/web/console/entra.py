"""Entra ID sign-in for the console in Azure: OpenID Connect's authorization code flow with
PKCE, through msal. Only the tenant's users (and, when one is set, the members of one group)
with a role (shared/web/console/roles.py) get a session; the tokens themselves are dropped
once the ID token's claims are read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared.dataverse.auth import is_public_cloud
from shared.dataverse.transport import tls_context
from shared.state.audit_trail import Actor
from shared.web.console.roles import Role, role_of
from shared.web.console.signin_settings import EntraApp

# What of msal's flow the callback needs (the sign-in URL itself is not kept).
FLOW_KEYS = ("state", "redirect_uri", "scope", "code_verifier", "nonce", "claims_challenge")


class SignInRefused(Exception):
    """Entra ID signed someone in whom the console does not let in, or the flow broke."""

    def __init__(self, message: str, *, user: Actor | None = None):
        super().__init__(message)
        self.user = user  # who Entra ID said it was, when it said


class NoRole(SignInRefused):
    """A user of the tenant with no role: they are told which role to ask for, and whom."""


@dataclass(frozen=True)
class EntraUser:
    actor: Actor
    role: Role


def _client(app: EntraApp, http: httpx.Client) -> Any:
    import msal  # only the Entra sign-in needs it: the API never imports msal for this

    # Instance discovery asks the public cloud about the authority: only there.
    return msal.ConfidentialClientApplication(
        app.client_id,
        client_credential=app.client_secret,
        authority=app.authority,
        http_client=http,
        instance_discovery=is_public_cloud(app.authority_host),
    )


def _http(app: EntraApp) -> httpx.Client:
    """The sign-in's connection to Entra ID, with the same TLS trust as the sync's."""
    return httpx.Client(verify=tls_context(app.ca_bundle), timeout=30.0)


def begin(app: EntraApp, redirect_uri: str) -> tuple[str, dict[str, Any]]:
    """Where to send the browser, and what of the flow to keep until it comes back."""
    with _http(app) as http:
        flow: dict[str, Any] = _client(app, http).initiate_auth_code_flow(
            scopes=[], redirect_uri=redirect_uri
        )
    return str(flow["auth_uri"]), {k: flow[k] for k in FLOW_KEYS if k in flow}


def finish(app: EntraApp, flow: dict[str, Any], params: Mapping[str, str]) -> EntraUser:
    """The signed-in user and their role, once the code is redeemed and the claims allow
    them in."""
    with _http(app) as http:
        try:
            result = _client(app, http).acquire_token_by_auth_code_flow(dict(flow), dict(params))
        except ValueError:  # msal: the state or nonce is not this flow's
            raise SignInRefused(
                "That sign-in answer belongs to another sign-in: sign in again."
            ) from None
    if "error" in result:
        # Entra's AADSTS code and first line say what to fix (no token or secret is in it).
        description = str(result.get("error_description") or "").split("\r\n")[0]
        raise SignInRefused(f"Entra ID refused the sign-in ({result['error']}): {description}")
    return allowed_user(app, result.get("id_token_claims") or {})


def allowed_user(app: EntraApp, claims: Mapping[str, Any]) -> EntraUser:
    name = str(claims.get("name") or claims.get("preferred_username") or claims.get("oid"))
    user = Actor.entra(str(claims.get("oid") or ""), name)
    if str(claims.get("tid", "")).lower() != app.tenant_id.lower():
        raise SignInRefused("only users of the tenant acctsync runs in can sign in", user=user)
    groups = claims.get("groups") or []
    if app.allowed_group and app.allowed_group not in groups:
        raise SignInRefused(
            "your account is not in the group allowed to use the acctsync console; "
            "ask an administrator to add you",
            user=user,
        )
    role = role_of(roles=claims.get("roles") or [], groups=groups, role_groups=app.role_groups)
    if role is None:
        raise NoRole(
            f"you are signed in as {name}, but you have no role in the acctsync console: ask "
            f"{app.admin_contact} to assign you the {Role.VIEWER.app_role} role (to see the "
            f"sync), {Role.OPERATOR.app_role} (also to pause, resume, verify and retry) or "
            f"{Role.ADMIN.app_role} (also to change the field selection and re-sync)",
            user=user,
        )
    return EntraUser(user, role)
