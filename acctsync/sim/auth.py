"""A Microsoft Entra ID stand-in: OpenID discovery, the v2.0 token endpoint, user realm and
the authorization endpoint of interactive sign-in (acctsync/sim/signin.py).

It knows one tenant with one app registration (client id + secret, public client flows
allowed) and one user, and issues JWT-shaped access tokens for the Dataverse URL (and for
Microsoft Graph, so a token with the wrong audience can be had the honest way). Errors use
Entra's JSON shape and AADSTS codes. Tokens are checked against the registry of issued
tokens, so they cannot be forged and can be expired on demand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

import orjson

from acctsync.sim.http import Handler, Request, Response, json_response
from acctsync.sim.org import Org, Principal
from acctsync.sim.schema import stable_id
from acctsync.sim.signin import CodeFlow, SignInSetup

GRAPH_RESOURCE: Final = "https://graph.microsoft.com"
# Entra names a resource by its application id in AADSTS messages: Dataverse's first-party
# app (Dynamics CRM) and Microsoft Graph.
DATAVERSE_APP_ID: Final = "00000007-0000-0000-c000-000000000000"
GRAPH_APP_ID: Final = "00000003-0000-0000-c000-000000000000"
_RESERVED_SCOPES: Final = frozenset({"openid", "profile", "offline_access", "email"})
_REFRESH_TOKEN_LIFETIME_S: Final = 90 * 24 * 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    tenant_domain: str
    client_id: str
    client_secret: str
    username: str
    password: str


@dataclass(frozen=True)
class IssuedToken:
    principal: Principal
    audience: str
    expires_at: float
    serial: int


@dataclass(frozen=True)
class _RefreshGrant:
    principal: Principal
    client_id: str
    expires_at: float


class AuthFailure(Exception):
    """Why a bearer token was refused."""


class TokenService:
    """Issues and checks tokens; `lifetime_s` is the access-token lifetime (expires_in)."""

    def __init__(
        self,
        credentials: Credentials,
        org: Org,
        *,
        resource: str,
        authority: str,
        lifetime_s: float,
    ) -> None:
        self.credentials = credentials
        self.org = org
        self.resource = resource.rstrip("/")
        self.authority = authority.rstrip("/")
        self.lifetime_s = lifetime_s
        self._key = secrets.token_bytes(32)
        self._serial = 0
        self._floor = 0
        self._issued: dict[str, IssuedToken] = {}
        self._refresh: dict[str, _RefreshGrant] = {}
        # Multi-factor authentication required of the ROPC user, as per-user MFA or a
        # Conditional Access policy would: password and refresh grants then fail (50076).
        self.mfa_required = False
        # The console's sign-in: OpenID Connect's authorization code flow.
        self.code_flow = CodeFlow(self)

    # ---- the resource side ----------------------------------------------------------------

    def expire_all(self) -> None:
        """Every access token issued so far is from now on expired."""
        self._floor = self._serial

    def authenticate(self, authorization: str | None) -> IssuedToken:
        if not authorization:
            raise AuthFailure("The request has no Authorization header with a bearer token.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthFailure("The Authorization header is not a bearer token.")
        issued = self._issued.get(token.strip())
        if issued is None:
            raise AuthFailure("The bearer token is invalid: it was not issued by the authority.")
        if issued.serial <= self._floor or issued.expires_at <= time.time():
            raise AuthFailure("The bearer token has expired.")
        if issued.audience != self.resource:
            raise AuthFailure(
                f"The bearer token's audience {issued.audience} is not this organization "
                f"({self.resource})."
            )
        return issued

    # ---- token minting -------------------------------------------------------------------

    def _jwt(self, claims: dict[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": "sim", "x5t": "sim"}
        signing_input = f"{_b64url(orjson.dumps(header))}.{_b64url(orjson.dumps(claims))}"
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    def _object_id(self, principal: Principal) -> str:
        return stable_id("entra-object", principal.id)

    def _access_token(self, principal: Principal, audience: str, scope: str) -> str:
        # The claims hold whole seconds, but validity is checked against the exact issue time:
        # truncating it would cut up to a second off a short lifetime (a 1 s token could be
        # expired on arrival).
        issued_at = time.time()
        now = int(issued_at)
        expires = now + int(self.lifetime_s)
        tenant = self.credentials.tenant_id
        oid = self._object_id(principal)
        claims: dict[str, object] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": expires,
            "appid": self.credentials.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{tenant}/",
            "oid": oid,
            "sub": oid,
            "tid": tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        if principal == self.org.app_user:
            claims["idtyp"] = "app"
        else:
            claims |= {
                "amr": ["pwd"],
                "name": principal.name,
                "unique_name": self.credentials.username,
                "upn": self.credentials.username,
                "scp": scope,
            }
        token = self._jwt(claims)
        self._serial += 1
        self._issued[token] = IssuedToken(
            principal, audience, issued_at + self.lifetime_s, self._serial
        )
        return token

    def application_token(self, audience: str) -> str:
        """A token of the application user, as a managed identity endpoint issues it."""
        return self._access_token(self.org.app_user, audience, "")

    def _id_token(self, principal: Principal, username: str | None = None, **claims: object) -> str:
        now = int(time.time())
        oid = self._object_id(principal)
        return self._jwt(
            {
                "aud": self.credentials.client_id,
                "iss": f"{self.authority}/{self.credentials.tenant_id}/v2.0",
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "name": principal.name,
                "oid": oid,
                "preferred_username": username or self.credentials.username,
                "sub": _b64url(hashlib.sha256(oid.encode()).digest()),
                "tid": self.credentials.tenant_id,
                "ver": "2.0",
                **claims,
            }
        )

    def signed_in(self, nonce: str | None, setup: SignInSetup) -> Response:
        """The token response of an interactive sign-in of the tenant's user: an ID token
        (with the request's nonce, and the user's app roles and groups when they have any)
        and a Microsoft Graph token, as Entra answers for the OpenID scopes alone."""
        principal, username = self.org.sync_user, None
        if setup.user:
            principal = Principal(stable_id("systemuser", setup.user), setup.user)
            local = "".join(c for c in setup.user.lower() if c.isalnum() or c == ".")
            username = f"{local}@{self.credentials.tenant_domain}"
        claims: dict[str, object] = {"nonce": nonce} if nonce else {}
        if setup.roles:
            claims["roles"] = list(setup.roles)
        if setup.groups:
            claims["groups"] = list(setup.groups)
        if setup.tenant_id:
            claims["tid"] = setup.tenant_id
        body = {
            "token_type": "Bearer",
            "scope": "openid profile email https://graph.microsoft.com/User.Read",
            "expires_in": int(self.lifetime_s),
            "ext_expires_in": int(self.lifetime_s),
            "access_token": self._access_token(principal, GRAPH_RESOURCE, "User.Read"),
            "id_token": self._id_token(principal, username, **claims),
            "client_info": self._client_info(principal),
        }
        return json_response(
            200, body, [("cache-control", "no-store, no-cache"), ("pragma", "no-cache")]
        )

    def _client_info(self, principal: Principal) -> str:
        info = {"uid": self._object_id(principal), "utid": self.credentials.tenant_id}
        return _b64url(orjson.dumps(info))

    # ---- the authority endpoints -----------------------------------------------------------

    def _known_tenant(self, tenant: str) -> bool:
        return tenant.lower() in (
            self.credentials.tenant_id.lower(),
            self.credentials.tenant_domain.lower(),
        )

    def error(
        self,
        request: Request,
        status: int,
        error: str,
        code: int,
        description: str,
        extra: dict[str, object] | None = None,
    ) -> Response:
        trace_id = str(uuid.uuid4())
        correlation_id = request.header("client-request-id") or str(uuid.uuid4())
        timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return json_response(
            status,
            {
                "error": error,
                "error_description": (
                    f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
                    f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"
                ),
                "error_codes": [code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"{self.authority}/error?code={code}",
                **(extra or {}),
            },
            [("cache-control", "no-store, no-cache"), ("pragma", "no-cache")],
        )

    def _unknown_tenant(self, request: Request, tenant: str, error: str) -> Response:
        return self.error(
            request,
            400,
            error,
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud. Check with your subscription "
            "administrator, this may happen if there are no active subscriptions for the tenant.",
        )

    def discovery(self, tenant: str) -> dict[str, object]:
        base = f"{self.authority}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.authority}/{self.credentials.tenant_id}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.authority}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def user_realm(self, username: str) -> dict[str, object]:
        domain = username.rpartition("@")[2].lower()
        if domain == self.credentials.tenant_domain.lower():
            return {
                "ver": "1.0",
                "account_type": "Managed",
                "domain_name": self.credentials.tenant_domain,
                "cloud_instance_name": "microsoftonline.com",
                "cloud_audience_urn": "urn:federation:MicrosoftOnline",
            }
        return {
            "ver": "1.0",
            "account_type": "Unknown",
            "cloud_instance_name": "microsoftonline.com",
        }

    async def handle(self, request: Request) -> Response:
        """The authority listener: discovery, keys, token endpoint and user realm."""
        segments = [s for s in request.path.split("/") if s]
        if (
            request.method == "GET"
            and segments[:2] == ["common", "userrealm"]
            and len(segments) == 3
        ):
            return json_response(200, self.user_realm(segments[2]))
        if not segments:
            return json_response(404, {"error": "not_found"})
        tenant, rest = segments[0], segments[1:]
        if request.method == "GET" and rest == ["v2.0", ".well-known", "openid-configuration"]:
            if not self._known_tenant(tenant):
                return self._unknown_tenant(request, tenant, "invalid_tenant")
            return json_response(200, self.discovery(tenant))
        if request.method == "GET" and rest == ["discovery", "v2.0", "keys"]:
            return json_response(200, {"keys": []})
        if request.method == "GET" and rest == ["oauth2", "v2.0", "authorize"]:
            if not self._known_tenant(tenant):
                return self._unknown_tenant(request, tenant, "invalid_tenant")
            return self.code_flow.authorize(request)
        if rest == ["oauth2", "v2.0", "token"]:
            if request.method != "POST":
                return self.error(
                    request,
                    405,
                    "invalid_request",
                    900561,
                    "The endpoint only accepts POST requests. Received a GET request.",
                )
            if not self._known_tenant(tenant):
                return self._unknown_tenant(request, tenant, "invalid_request")
            return self._token(request, tenant)
        return json_response(404, {"error": "not_found"})

    # ---- the token endpoint ----------------------------------------------------------------

    def _token(self, request: Request, tenant: str) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.header("authorization") or ""
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:].strip() + "==").decode("utf-8", "replace")
            client_id, _, client_secret = decoded.partition(":")
        grant_type = form.get("grant_type")
        if not grant_type:
            return self._missing(request, "grant_type")
        if not client_id:
            return self._missing(request, "client_id")
        if client_id != self.credentials.client_id:
            return self.error(
                request,
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.credentials.tenant_domain}'. This can happen if the application has "
                "not been installed by the administrator of the tenant or consented to by any "
                "user in the tenant. You may have sent your authentication request to the "
                "wrong tenant.",
            )
        if client_secret is not None and not hmac.compare_digest(
            client_secret.encode(), self.credentials.client_secret.encode()
        ):
            return self.error(
                request,
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        if grant_type == "client_credentials":
            return self._client_credentials(request, form, client_secret)
        if grant_type == "password":
            return self._password(request, form)
        if grant_type == "refresh_token":
            return self._refresh_token(request, form)
        if grant_type == "authorization_code":
            return self.code_flow.redeem(request, form)
        return self.error(
            request,
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'.",
        )

    def _missing(self, request: Request, parameter: str) -> Response:
        return self.error(
            request,
            400,
            "invalid_request",
            900144,
            f"The request body must contain the following parameter: '{parameter}'.",
        )

    def _resource_scope(
        self, request: Request, form: dict[str, str]
    ) -> tuple[str, list[str]] | Response:
        """The one resource a token is asked for and its permissions, or an Entra error."""
        raw = form.get("scope")
        if not raw:
            return self._missing(request, "scope")
        scopes = [s for s in raw.split() if s not in _RESERVED_SCOPES]
        resources = set()
        permissions = []
        for scope in scopes:
            resource, _, permission = scope.rpartition("/")
            resources.add(resource.rstrip("/"))
            permissions.append(permission)
        if len(resources) != 1:
            return self.error(
                request,
                400,
                "invalid_scope",
                70011,
                f"The provided request must include a 'scope' input parameter. The provided "
                f"value for the input parameter 'scope' is not valid. The scope {raw} is not "
                "valid.",
            )
        resource = resources.pop()
        if resource not in (self.resource, GRAPH_RESOURCE):
            return self.error(
                request,
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.credentials.tenant_domain}. This can happen if the application has not "
                "been installed by the administrator of the tenant or consented to by any user "
                "in the tenant. You might have sent your authentication request to the wrong "
                "tenant.",
            )
        return resource, permissions

    def _token_response(
        self,
        principal: Principal,
        resource: str,
        permissions: list[str],
        *,
        user_tokens: bool,
    ) -> Response:
        granted = "user_impersonation" if resource == self.resource else "User.Read"
        body: dict[str, object] = {"token_type": "Bearer"}
        if user_tokens:
            # Echoing the requested scopes lets msal find the token in its cache later.
            body["scope"] = " ".join(f"{resource}/{p}" for p in permissions)
        body |= {
            "expires_in": int(self.lifetime_s),
            "ext_expires_in": int(self.lifetime_s),
            "access_token": self._access_token(principal, resource, granted),
        }
        if user_tokens:
            refresh_token = "1.A" + secrets.token_urlsafe(48)
            self._refresh[refresh_token] = _RefreshGrant(
                principal, self.credentials.client_id, time.time() + _REFRESH_TOKEN_LIFETIME_S
            )
            body |= {
                "refresh_token": refresh_token,
                "id_token": self._id_token(principal),
                "client_info": self._client_info(principal),
            }
        return json_response(
            200, body, [("cache-control", "no-store, no-cache"), ("pragma", "no-cache")]
        )

    def _client_credentials(
        self, request: Request, form: dict[str, str], client_secret: str | None
    ) -> Response:
        if client_secret is None:
            return self.error(
                request,
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        scoped = self._resource_scope(request, form)
        if isinstance(scoped, Response):
            return scoped
        resource, permissions = scoped
        if permissions != [".default"]:
            return self.error(
                request,
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form['scope']} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI).",
            )
        request.principal = "app"
        return self._token_response(self.org.app_user, resource, permissions, user_tokens=False)

    def _password(self, request: Request, form: dict[str, str]) -> Response:
        username, password = form.get("username"), form.get("password")
        if not username:
            return self._missing(request, "username")
        if password is None:
            return self._missing(request, "password")
        if username.lower() != self.credentials.username.lower():
            return self.error(
                request,
                400,
                "invalid_grant",
                50034,
                f"The user account {{EmailHidden}} does not exist in the "
                f"{self.credentials.tenant_domain} directory. To sign into this application, "
                "the account must be added to the directory.",
            )
        if not hmac.compare_digest(password.encode(), self.credentials.password.encode()):
            return self.error(
                request,
                400,
                "invalid_grant",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        return self._user_token(request, form)

    def _user_token(self, request: Request, form: dict[str, str]) -> Response:
        scoped = self._resource_scope(request, form)
        if isinstance(scoped, Response):
            return scoped
        resource, permissions = scoped
        if self.mfa_required:
            # After the password (or refresh token) checked out, as Entra evaluates MFA once
            # the first factor succeeded; a refresh token got without MFA is refused too.
            # suberror basic_action: an interactive sign-in would resolve it.
            app_id = DATAVERSE_APP_ID if resource == self.resource else GRAPH_APP_ID
            return self.error(
                request,
                400,
                "invalid_grant",
                50076,
                "Due to a configuration change made by your administrator, or because you "
                "moved to a new location, you must use multi-factor authentication to access "
                f"'{app_id}'.",
                {"suberror": "basic_action"},
            )
        allowed = {".default", "user_impersonation" if resource == self.resource else "User.Read"}
        if not set(permissions) <= allowed:
            return self.error(
                request,
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{self.credentials.client_id}'. Send an interactive authorization request "
                "for this user and resource.",
            )
        request.principal = "user"
        return self._token_response(self.org.sync_user, resource, permissions, user_tokens=True)

    def _refresh_token(self, request: Request, form: dict[str, str]) -> Response:
        token = form.get("refresh_token")
        if not token:
            return self._missing(request, "refresh_token")
        grant = self._refresh.get(token)
        if grant is None or grant.client_id != form.get("client_id"):
            return self.error(
                request,
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
        if grant.expires_at <= time.time():
            return self.error(
                request,
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity.",
            )
        return self._user_token(request, form)


def realm_handler(tokens: TokenService) -> Handler:
    """The extra listener on port 443: msal asks it for the user realm before ROPC."""

    async def handle(request: Request) -> Response:
        segments = [s for s in request.path.split("/") if s]
        if (
            request.method == "GET"
            and segments[:2] == ["common", "userrealm"]
            and len(segments) == 3
        ):
            return json_response(200, tokens.user_realm(segments[2]))
        return json_response(404, {"error": "not_found"})

    return handle


def identity_handler(tokens: TokenService, *, secret: str, client_id: str) -> Handler:
    """The App Service managed identity endpoint (IDENTITY_ENDPOINT, plain HTTP on loopback,
    as on an App Service instance): tokens for the user-assigned identity `client_id`, which
    the organisation knows as its application user. The caller proves it runs on the
    instance with the X-IDENTITY-HEADER secret."""

    async def handle(request: Request) -> Response:
        if request.method != "GET" or request.path.rstrip("/") != "/msi/token":
            return json_response(404, {"statusCode": 404, "message": "Not found."})
        if not hmac.compare_digest(
            (request.header("x-identity-header") or "").encode(), secret.encode()
        ):
            return json_response(
                401, {"statusCode": 401, "message": "The X-IDENTITY-HEADER is missing or wrong."}
            )
        query = dict(parse_qsl(request.query_string))
        if query.get("api-version") != "2019-08-01":
            return json_response(
                400, {"statusCode": 400, "message": "api-version is not supported."}
            )
        wanted = query.get("client_id")
        if wanted is not None and wanted.lower() != client_id.lower():
            return json_response(
                400,
                {
                    "statusCode": 400,
                    "message": "No User Assigned or Delegated Managed Identity found for "
                    "specified ClientId/ResourceId/PrincipalId.",
                },
            )
        resource = (query.get("resource") or "").rstrip("/")
        if resource.endswith("/.default"):
            resource = resource.removesuffix("/.default")
        if not resource:
            return json_response(400, {"statusCode": 400, "message": "resource is required."})
        token = tokens.application_token(resource)
        return json_response(
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time() + tokens.lifetime_s)),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            },
        )

    return handle
