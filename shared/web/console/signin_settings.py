"""How the console signs people in, read from the environment when the app is built.

Locally (and wherever no Entra app is configured) a person signs in once with the key the
host guards the API with (ACCTSYNC_API_KEY). In Azure the console signs the tenant's users in
with Entra ID (OpenID Connect through msal): CONSOLE_ENTRA_CLIENT_ID and its tenant, the app
registration's secret, and optionally one group whose members alone may sign in. What each
user may do is their role (shared/web/console/roles.py): the app roles assigned to them, or
the groups CONSOLE_{VIEWER,OPERATOR,ADMIN}_GROUP_ID map to roles; CONSOLE_ADMIN_CONTACT is who
the console tells someone without a role to ask.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shared.settings import DEFAULT_AUTHORITY_HOST, SettingsError
from shared.web.console.roles import Role

# Who someone without a role is told to ask, when CONSOLE_ADMIN_CONTACT does not say.
DEFAULT_ADMIN_CONTACT = (
    "the owners of the acctsync console's app registration in Entra ID "
    "(Enterprise applications, Users and groups)"
)


class SignIn(StrEnum):
    KEY = "key"  # ACCTSYNC_API_KEY, entered once
    ENTRA = "entra"  # OpenID Connect with the tenant's Entra ID
    NONE = "none"  # nothing configured: every page says how to set one up


@dataclass(frozen=True)
class EntraApp:
    tenant_id: str
    client_id: str
    client_secret: str
    authority_host: str
    allowed_group: str | None  # object id of the one group whose members may sign in
    ca_bundle: str | None = None  # DATAVERSE_CA_BUNDLE: the same trust as the sync's sign-in
    role_groups: Mapping[Role, str] = field(default_factory=dict)  # group object id per role
    admin_contact: str = DEFAULT_ADMIN_CONTACT  # whom to ask for a role

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"


@dataclass(frozen=True)
class ConsoleSettings:
    sign_in: SignIn
    api_key: str | None
    entra: EntraApp | None
    session_key: bytes  # signs the session cookie; never sent anywhere
    problem: str | None = None  # why no sign-in is configured, for the sign-in page

    @property
    def admin_contact(self) -> str:
        return self.entra.admin_contact if self.entra else DEFAULT_ADMIN_CONTACT

    @classmethod
    def broken(cls, problem: str) -> ConsoleSettings:
        """Sign-in set up wrong: nobody signs in, and the sign-in page says why."""
        return cls(SignIn.NONE, None, None, _derived(os.urandom(32).hex()), problem)

    @classmethod
    def from_env(cls, api_key: str | None, env: Mapping[str, str] | None = None) -> ConsoleSettings:
        env = os.environ if env is None else env
        client_id = env.get("CONSOLE_ENTRA_CLIENT_ID", "").strip()
        secret = env.get("CONSOLE_SESSION_SECRET", "").strip()
        if client_id:
            entra = _entra(env, client_id)
            if not secret:
                raise SettingsError(
                    "CONSOLE_ENTRA_CLIENT_ID is set but CONSOLE_SESSION_SECRET is not: set it "
                    "to a long random value (a Key Vault reference in Azure) to sign sessions"
                )
            return cls(SignIn.ENTRA, None, entra, _derived(secret))
        if api_key:
            # The cookie is signed with a key derived from the API key, never the key itself.
            return cls(SignIn.KEY, api_key, None, _derived(secret or api_key))
        return cls(SignIn.NONE, None, None, _derived(secret or os.urandom(32).hex()))


def _entra(env: Mapping[str, str], client_id: str) -> EntraApp:
    tenant = env.get("CONSOLE_ENTRA_TENANT_ID", "").strip()
    client_secret = env.get("CONSOLE_ENTRA_CLIENT_SECRET", "").strip()
    missing = [
        name
        for name, value in (
            ("CONSOLE_ENTRA_TENANT_ID", tenant),
            ("CONSOLE_ENTRA_CLIENT_SECRET", client_secret),
        )
        if not value
    ]
    if missing:
        raise SettingsError(f"CONSOLE_ENTRA_CLIENT_ID is set but {', '.join(missing)} is not")
    host = (env.get("DATAVERSE_AUTHORITY_HOST", "").strip() or DEFAULT_AUTHORITY_HOST).rstrip("/")
    group = env.get("CONSOLE_ENTRA_GROUP_ID", "").strip() or None
    ca_bundle = env.get("DATAVERSE_CA_BUNDLE", "").strip() or None
    if ca_bundle is not None and not os.path.isfile(ca_bundle):
        raise SettingsError(f"DATAVERSE_CA_BUNDLE={ca_bundle!r} is not a readable file")
    role_groups = {
        role: value
        for role in Role
        if (value := env.get(f"CONSOLE_{role.name}_GROUP_ID", "").strip())
    }
    contact = env.get("CONSOLE_ADMIN_CONTACT", "").strip() or DEFAULT_ADMIN_CONTACT
    return EntraApp(tenant, client_id, client_secret, host, group, ca_bundle, role_groups, contact)


def _derived(secret: str) -> bytes:
    return hmac.new(b"acctsync console session", secret.encode(), hashlib.sha256).digest()
