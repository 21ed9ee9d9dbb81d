"""The console's session: a signed, expiring cookie naming who signed in with which role, and
the CSRF token every state-changing form carries. The cookie holds no key and no token, only
who, their role and until when; the CSRF token is derived from the session, so it needs no
storage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from shared.state.audit_trail import Actor, ActorKind
from shared.web.console.roles import Role

SESSION_COOKIE = "acctsync_session"
# Before sign-in: binds the sign-in form's CSRF token (and the Entra flow) to this browser.
PRESESSION_COOKIE = "acctsync_presession"
SESSION_SECONDS = 8 * 3600
PRESESSION_SECONDS = 15 * 60


@dataclass(frozen=True)
class Session:
    user: str  # what the pages show: "API key" or the Entra user's name
    sid: str  # random per sign-in: the CSRF token derives from it
    expires: int
    role: Role  # what the sign-in's claims gave (the API key: admin)
    oid: str | None = None  # the Entra object id

    @property
    def actor(self) -> Actor:
        """Who acts, for the audit trail."""
        return Actor.entra(self.oid, self.user) if self.oid else Actor.api_key()


class Signer:
    """Signs and checks small JSON values with the console's session key."""

    def __init__(self, key: bytes):
        self.key = key

    def dump(self, value: dict[str, object]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode())
        return body.decode() + "." + self._mac(body)

    def load(self, text: str | None) -> dict[str, object] | None:
        if not text or "." not in text:
            return None
        body, _, mac = text.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            value = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if not isinstance(value, dict) or int(value.get("exp", 0)) < time.time():
            return None
        return value

    def token(self, purpose: str, subject: str) -> str:
        return hmac.new(self.key, f"{purpose}|{subject}".encode(), hashlib.sha256).hexdigest()

    def _mac(self, body: bytes) -> str:
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()


def read_session(signer: Signer, request: Request) -> Session | None:
    value = signer.load(request.cookies.get(SESSION_COOKIE))
    if value is None or value.get("kind") != "session" or value.get("role") not in set(Role):
        return None  # a session from before roles signs in again
    oid = str(value.get("oid") or "") or None
    user, sid, expires = str(value["user"]), str(value["sid"]), int(str(value["exp"]))
    return Session(user, sid, expires, Role(str(value["role"])), oid)


def start_session(
    signer: Signer, request: Request, response: Response, actor: Actor, role: Role
) -> None:
    expires = int(time.time()) + SESSION_SECONDS
    value: dict[str, object] = {
        "kind": "session",
        "user": "API key" if actor.kind is ActorKind.API_KEY else actor.name,
        "oid": actor.id or "",
        "role": role.value,
        "sid": secrets.token_urlsafe(16),
        "exp": expires,
    }
    _set(request, response, SESSION_COOKIE, signer.dump(value), SESSION_SECONDS)
    response.delete_cookie(PRESESSION_COOKIE, path="/")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def presession(signer: Signer, request: Request) -> dict[str, object] | None:
    value = signer.load(request.cookies.get(PRESESSION_COOKIE))
    return value if value is not None and value.get("kind") == "presession" else None


def new_presession_id() -> str:
    return secrets.token_urlsafe(16)


def start_presession(
    signer: Signer,
    request: Request,
    response: Response,
    *,
    pid: str,
    lax: bool = False,
    **extra: object,
) -> None:
    """The pre-sign-in id in its own short-lived cookie. `lax`: the Entra flow's cookie,
    which must come back with the redirect from the sign-in page (a cross-site navigation,
    which a Strict cookie does not go along with)."""
    value = {"kind": "presession", "pid": pid, "exp": int(time.time()) + PRESESSION_SECONDS}
    cookie = signer.dump({**value, **extra})
    _set(request, response, PRESESSION_COOKIE, cookie, PRESESSION_SECONDS, lax=lax)


def _set(
    request: Request,
    response: Response,
    name: str,
    value: str,
    max_age: int,
    *,
    lax: bool = False,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax" if lax else "strict",
        secure=request.url.scheme == "https",
    )
