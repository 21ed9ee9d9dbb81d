"""Paging tokens: an opaque, tamper-evident wrapping of where a walk stands.

A token is `base64url(JSON payload) "." base64url(HMAC-SHA256)`. The payload names the walk
it belongs to (the route and the parameters that fix its order and filter), the position and
when it was issued; the MAC is keyed with a random secret kept in the state table, created by
the first process that needs it, so every instance signs and checks with the same key and
nothing of it is in the settings or the code. A token edited by hand, cut short, issued for
another walk or older than TOKEN_TTL_S is refused, and the caller is told what to do.

Nothing parses a token before its signature holds: its size and alphabet are checked first and
its base64 must be the one canonical spelling, so hostile text (nested brackets, characters
slipped in that a lenient decoder would skip) is refused cheaply and never reaches the JSON
parser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError

from shared.errors import RequestRefused
from shared.storage import TableRepository

TOKEN_TTL_S = 7 * 24 * 3600
_CONTEXT = b"acctsync page token v1|"
# Far above any token issued (a walk's few parameters and a position), far below harm.
MAX_TOKEN_CHARS = 4096
# base64url without padding; an HMAC-SHA256 is 32 bytes, 43 characters.
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")


class TokenError(RequestRefused):
    """A token that cannot be followed; `code` is the API error word."""


@dataclass(frozen=True)
class Walk:
    """What a token continues: its route and the parameters it was started with."""

    route: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, route: str, **params: object) -> Walk:
        return cls(route, tuple(sorted((k, str(v)) for k, v in params.items() if v is not None)))


class PageTokens:
    def __init__(self, key: bytes, *, ttl_s: float = TOKEN_TTL_S):
        self._key = key
        self.ttl_s = ttl_s

    def issue(self, walk: Walk, position: dict[str, Any], *, now: float | None = None) -> str:
        payload = {
            "w": walk.route,
            "q": dict(walk.params),
            "p": position,
            "t": int(time.time() if now is None else now),
        }
        return self._signed(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())

    def read(self, walk: Walk, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The position a token holds; TokenError when it is not one this walk issued."""
        body = self._body(token)
        # The very text this key issues for that body: a changed MAC, or the same bytes
        # spelt otherwise (a decoder ignores the spare bits of the last character), fails.
        if not hmac.compare_digest(token, self._signed(body)):
            raise TokenError(
                "invalid_token",
                "the pageToken was changed or is not one acctsync issued; "
                "use nextPageToken exactly as it was answered",
            )
        payload = json.loads(body)
        if payload.get("w") != walk.route or payload.get("q") != dict(walk.params):
            raise TokenError(
                "token_mismatch",
                f"this pageToken belongs to another walk than {walk.route} with these "
                "parameters; send it with the same route and parameters it came from",
            )
        age = (time.time() if now is None else now) - float(payload["t"])
        if age > self.ttl_s:
            raise TokenError(
                "expired_token",
                f"the pageToken is older than {self.ttl_s / 86400:g} days; start again "
                "(a list without pageToken, or a new token from the pagingtoken route)",
            )
        position: dict[str, Any] = payload["p"]
        return position

    def _signed(self, body: bytes) -> str:
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + body, hashlib.sha256).digest()

    @staticmethod
    def _body(token: str) -> bytes:
        """The body of a token of the right size and shape; nothing is parsed here."""
        try:
            if len(token) > MAX_TOKEN_CHARS or not _SHAPE.fullmatch(token):
                raise ValueError("not a token")
            return _unb64(token.split(".")[0])
        except (ValueError, binascii.Error):
            raise TokenError(
                "malformed_token",
                "the pageToken is not a token acctsync answered; "
                "use nextPageToken exactly as it was answered",
            ) from None


class TokenKeys(TableRepository):
    """The signing secret, one per storage account, in the state table."""

    PARTITION, ROW = "pagetokens", "key"

    def key(self) -> bytes:
        secret = secrets.token_bytes(32)
        try:
            self.table.create_entity(
                {"PartitionKey": self.PARTITION, "RowKey": self.ROW, "secret": _b64(secret)}
            )
            return secret
        except ResourceExistsError:
            # Kept by a process before this one (or beside it): everyone signs with the first.
            row = self.table.get_entity(self.PARTITION, self.ROW)
            return _unb64(str(row["secret"]))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
