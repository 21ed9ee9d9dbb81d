"""The console's sign-in pieces that need no server: the signed session value, the redirect
after sign-in, who Entra ID may let in, and the CSV a spreadsheet opens."""

from __future__ import annotations

import csv
import io
import time

import pytest

from shared.state.audit_trail import Actor
from shared.web.console.attempts import WrongKeys
from shared.web.console.entra import EntraUser, NoRole, SignInRefused, allowed_user
from shared.web.console.filters import csv_response, date_range
from shared.web.console.pages import safe_next
from shared.web.console.roles import Role, role_of
from shared.web.console.session import Signer
from shared.web.console.signin_settings import ConsoleSettings, EntraApp, SignIn

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
GROUP = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
OID = "5d0f7a3e-1b2c-4d5e-8f90-a1b2c3d4e5f6"


def test_a_signed_value_comes_back_only_untouched_and_unexpired() -> None:
    signer = Signer(b"k" * 32)
    signed = {"kind": "session", "user": "API key", "exp": int(time.time()) + 60}
    value = signer.dump(signed)
    assert signer.load(value) == signed
    body, _, mac = value.rpartition(".")
    assert signer.load(body[:-2] + "xx." + mac) is None  # tampered
    assert Signer(b"other key" * 4).load(value) is None  # signed with another key
    expired = signer.dump({"kind": "session", "exp": int(time.time()) - 1})
    assert signer.load(expired) is None
    assert signer.load("no-dot-at-all") is None and signer.load(None) is None


def test_the_session_key_is_derived_and_never_the_api_key() -> None:
    settings = ConsoleSettings.from_env("the-api-key", env={})
    assert settings.sign_in is SignIn.KEY
    assert b"the-api-key" not in settings.session_key and len(settings.session_key) == 32
    assert ConsoleSettings.from_env(None, env={}).sign_in is SignIn.NONE


def test_entra_sign_in_needs_its_secrets() -> None:
    env = {"CONSOLE_ENTRA_CLIENT_ID": "c", "CONSOLE_ENTRA_TENANT_ID": TENANT}
    with pytest.raises(ValueError, match="CONSOLE_ENTRA_CLIENT_SECRET"):
        ConsoleSettings.from_env(None, env=env)
    with pytest.raises(ValueError, match="CONSOLE_SESSION_SECRET"):
        ConsoleSettings.from_env(None, env={**env, "CONSOLE_ENTRA_CLIENT_SECRET": "s"})
    full = {**env, "CONSOLE_ENTRA_CLIENT_SECRET": "s", "CONSOLE_SESSION_SECRET": "x" * 40}
    settings = ConsoleSettings.from_env("ignored-key", env=full)
    assert settings.sign_in is SignIn.ENTRA and settings.api_key is None  # no key sign-in


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/errors?q=x", "/errors?q=x"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
        # Browsers drop tabs and newlines from URLs: each of these is //evil.example to them.
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\r\n/evil.example", "/"),
        ("\t//evil.example", "/"),
        ("/\x00/evil.example", "/"),
        ("/ /evil.example", "/"),
        ("/\u2028/evil.example", "/"),
        ("/records?q=a%09b", "/records?q=a%09b"),  # encoded, it stays a path of this site
    ],
)
def test_after_sign_in_only_a_path_of_this_site(asked: str, goes_to: str) -> None:
    assert safe_next(asked) == goes_to


def test_only_the_tenant_and_the_group_get_in() -> None:
    app = EntraApp(TENANT, "client", "secret", "https://login.microsoftonline.com", GROUP)
    member = {
        "tid": TENANT,
        "oid": OID,
        "name": "Dana Admin",
        "groups": [GROUP],
        "roles": ["Admin"],
    }
    assert allowed_user(app, member) == EntraUser(Actor.entra(OID, "Dana Admin"), Role.ADMIN)
    with pytest.raises(SignInRefused, match="tenant"):
        allowed_user(app, {**member, "tid": "11111111-1111-1111-1111-111111111111"})
    with pytest.raises(SignInRefused, match="group"):
        allowed_user(app, {**member, "groups": []})
    anyone = EntraApp(TENANT, "client", "secret", "https://login.microsoftonline.com", None)
    viewer = {"tid": TENANT, "preferred_username": "x@contoso.com", "roles": ["Viewer"]}
    assert allowed_user(anyone, viewer).role is Role.VIEWER


def test_deny_by_default_a_user_without_a_role_is_told_which_to_ask_for_and_whom() -> None:
    """In the tenant, in the allowed group, but no app role and no mapped group: refused,
    naming the roles and the contact (the app's owners unless CONSOLE_ADMIN_CONTACT says)."""
    app = EntraApp(TENANT, "client", "secret", "https://login.microsoftonline.com", GROUP)
    with pytest.raises(NoRole, match="Viewer role") as refused:
        allowed_user(app, {"tid": TENANT, "oid": OID, "name": "Dana", "groups": [GROUP]})
    assert "owners of the acctsync console's app registration" in str(refused.value)
    assert refused.value.user == Actor.entra(OID, "Dana")
    env = {
        "CONSOLE_ENTRA_CLIENT_ID": "c",
        "CONSOLE_ENTRA_TENANT_ID": TENANT,
        "CONSOLE_ENTRA_CLIENT_SECRET": "s",
        "CONSOLE_SESSION_SECRET": "x" * 40,
        "CONSOLE_ADMIN_CONTACT": "crm-platform@contoso.com",
        "CONSOLE_OPERATOR_GROUP_ID": GROUP,
    }
    entra = ConsoleSettings.from_env(None, env=env).entra
    assert entra is not None and entra.role_groups == {Role.OPERATOR: GROUP}
    with pytest.raises(NoRole, match=r"ask crm-platform@contoso\.com"):
        allowed_user(entra, {"tid": TENANT, "oid": OID, "name": "Dana", "groups": ["other"]})
    assert allowed_user(entra, {"tid": TENANT, "oid": OID, "groups": [GROUP]}).role is Role.OPERATOR


@pytest.mark.parametrize(
    ("roles", "groups", "expected"),
    [
        ([], [], None),  # deny by default
        (["viewer"], [], Role.VIEWER),  # app role values in any case
        (["Viewer", "Admin"], [], Role.ADMIN),  # the highest counts
        (["Viewer"], ["operators"], Role.OPERATOR),  # a mapped group counts as much
        (["Owner"], ["someone-else"], None),  # neither an app role nor a mapped group
    ],
)
def test_the_highest_role_the_claims_give(
    roles: list[str], groups: list[str], expected: Role | None
) -> None:
    mapping = {Role.OPERATOR: "operators", Role.ADMIN: "admins"}
    assert role_of(roles=roles, groups=groups, role_groups=mapping) is expected


def test_csv_cells_never_become_formulas() -> None:
    cells: list[list[object]] = [
        ["=HYPERLINK(1)", "+1 555"],
        [3, "ok"],
        ["\t=1+1", "\r=1"],
        ["-1", "@x"],
    ]
    response = csv_response("e.csv", ["id", "message"], cells)
    rows = list(csv.reader(io.StringIO(bytes(response.body).decode())))
    assert rows == [
        ["id", "message"],
        ["'=HYPERLINK(1)", "'+1 555"],
        ["3", "ok"],
        ["'\t=1+1", "'\r=1"],
        ["'-1", "'@x"],
    ]
    assert response.headers["content-disposition"] == 'attachment; filename="e.csv"'


def test_a_bad_date_range_is_said_and_left_out() -> None:
    assert date_range("2026-12-02", "2026-12-01")[2] is not None
    assert date_range("yesterday", "")[2] is not None
    since, until, problem = date_range("2026-12-01", "2026-12-01")
    assert problem is None and since is not None and until is not None
    assert (until - since).total_seconds() == pytest.approx(86400, abs=0.01)


def test_wrong_keys_make_that_address_wait_a_minute_at_most() -> None:
    now = [1000.0]
    wrong = WrongKeys(limit=5, window_s=60.0, clock=lambda: now[0])
    for _ in range(4):
        wrong.failed("10.0.0.1")
        now[0] += 1
    assert wrong.wait_s("10.0.0.1") == 0.0  # four wrong keys: a fifth try is allowed
    wrong.failed("10.0.0.1")
    assert wrong.wait_s("10.0.0.1") == pytest.approx(56.0)  # until the first falls out
    assert wrong.wait_s("10.0.0.2") == 0.0  # another address is not held back
    now[0] += 56.0
    assert wrong.wait_s("10.0.0.1") == 0.0
    wrong.failed("10.0.0.1")
    assert wrong.wait_s("10.0.0.1") > 0  # the last four are still within the minute
    wrong.succeeded("10.0.0.1")
    assert wrong.wait_s("10.0.0.1") == 0.0
