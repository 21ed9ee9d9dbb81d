"""What each way of failing to sign in means, by the code Entra ID answers (AADSTS...), and
the exact fix: the message a cycle's failure and `acctsync validate` give."""

from __future__ import annotations

import re

from shared.dataverse.problems import DataverseAuthError

# The AADSTS codes a set-up of this kind meets, from Microsoft's error code reference.
_FIXES: dict[str, str] = {
    "90002": (
        "DATAVERSE_TENANT_ID names no Entra ID tenant: set it to the Directory (tenant) ID on "
        "the app registration's Overview page (Entra admin center, App registrations)"
    ),
    "700016": (
        "DATAVERSE_CLIENT_ID is not an application of that tenant: set it to the Application "
        "(client) ID on the app registration's Overview page, in the tenant "
        "DATAVERSE_TENANT_ID names"
    ),
    "7000215": (
        "DATAVERSE_CLIENT_SECRET is wrong: set it to the secret's Value (not its Secret ID) "
        "from the app registration's Certificates & secrets; if nobody kept the Value, add a "
        "new client secret and use that"
    ),
    "7000222": (
        "the client secret has expired: add a new client secret under the app registration's "
        "Certificates & secrets and set DATAVERSE_CLIENT_SECRET to its Value"
    ),
    "50076": (
        "the sync user DATAVERSE_USERNAME must pass multi-factor authentication, which a "
        "password sign-in (ROPC) cannot: switch to client credentials (an application user; "
        "unset DATAVERSE_USERNAME and DATAVERSE_PASSWORD, set DATAVERSE_CLIENT_SECRET) or "
        "exclude this user from MFA for Dynamics in Conditional Access"
    ),
    "50126": (
        "DATAVERSE_USERNAME or DATAVERSE_PASSWORD is wrong: sign in once as that user in a "
        "browser to check, then set the working pair"
    ),
    "50034": "DATAVERSE_USERNAME is not a user of that tenant: check the user name",
    "50057": "the sync user's account is disabled in Entra ID: enable it, or use another",
    "500011": (
        "DATAVERSE_URL is not an environment of that tenant: check the URL in the Power "
        "Platform admin center (Environments, the environment's Environment URL)"
    ),
}
_FIXES["50079"] = _FIXES["50076"]  # MFA registration required: the same remedy
_FIXES["50158"] = _FIXES["50076"]  # an external security challenge (Conditional Access)
_AADSTS = re.compile(r"AADSTS(\d+)")

# Dataverse's answer to a token whose principal is no user of the environment.
NOT_A_MEMBER = "0x80072560"
APPLICATION_USER_FIX = (
    "make the sign-in an application user of the environment: Power Platform admin center, "
    "Environments, the environment, Settings, Users + permissions, Application users, "
    "+ New app user (the app registration's client ID, or the Function App's managed "
    "identity), with a security role that reads Account and Contact"
)

GENERAL_FIX = (
    "check DATAVERSE_TENANT_ID, DATAVERSE_CLIENT_ID and DATAVERSE_CLIENT_SECRET (or the sync "
    "user's DATAVERSE_USERNAME and DATAVERSE_PASSWORD), and that the application user still "
    "has its security role; `acctsync validate` names the check that fails"
)


def aadsts_code(error: DataverseAuthError) -> str | None:
    """The AADSTS number Entra ID answered, when the error came from it."""
    if error.code and error.code.isdigit():
        return error.code
    found = _AADSTS.search(str(error))
    return found.group(1) if found else None


def sign_in_fix(error: DataverseAuthError) -> str:
    """The fix for a refused sign-in: exact when Entra ID said which, general otherwise."""
    if error.code == NOT_A_MEMBER:
        return APPLICATION_USER_FIX
    code = aadsts_code(error)
    return _FIXES.get(code, GENERAL_FIX) if code else GENERAL_FIX
