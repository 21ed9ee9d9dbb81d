"""Paging tokens: opaque and signed; a malformed, changed, foreign or expired one is refused
with the API's error word, before anything parses it. (The API's 400s: tests/feed/test_tokens.py.)
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from shared.mirror.tokens import PageTokens, TokenError, Walk

WALK = Walk.of("contacts", include_deleted=False)


def test_a_token_reads_back_only_for_its_own_walk_unchanged_and_in_time() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.issue(WALK, {"after": "0001"})
    assert tokens.read(WALK, token) == {"after": "0001"}
    body, mac = token.split(".")
    forged = (
        base64.urlsafe_b64encode(json.dumps({**_payload(body), "p": {"after": "9999"}}).encode())
        .decode()
        .rstrip("=")
    )
    cases = {
        "invalid_token": [f"{forged}.{mac}", f"{body}.{mac[:-2]}AA"],
        "malformed_token": ["", "x", "not.a.token", f"{body}", "%%%.%%%"],
        "token_mismatch": [tokens.issue(Walk.of("contacts", include_deleted=True), {})],
        "expired_token": [tokens.issue(WALK, {}, now=time.time() - 8 * 86400)],
    }
    for code, bad in cases.items():
        for token_text in bad:
            with pytest.raises(TokenError) as refused:
                tokens.read(WALK, token_text)
            assert refused.value.code == code, token_text
    # Another key (another storage account) does not accept it either.
    with pytest.raises(TokenError):
        PageTokens(b"o" * 32).read(WALK, token)


def _respellings(token: str) -> list[str]:
    """The token with characters slipped in that a lenient base64 decoder skips, and with the
    spare bits of a last character flipped: the same bytes, spelled otherwise."""
    body, mac = token.split(".")
    spare = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = spare[spare.index(mac[-1]) ^ 1]
    return [
        f"{body[:5]}!{body[5:]}.{mac}",
        f"{body}.{mac[:10]}\n{mac[10:]}",
        f"{body}=.{mac}",
        f" {token}",
        f"{body}.{mac[:-1]}{last}",
    ]


def test_hostile_tokens_are_refused_before_anything_parses_them() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.issue(WALK, {"after": "0001"})
    hostile = [
        "[" * 100_000 + "." + "A" * 43,  # parsed before its MAC was checked: RecursionError
        _b64("[" * 3000) + "." + "A" * 43,
        "A" * 100_000 + "." + "A" * 43,
        token + "\x00",
        *_respellings(token),
    ]
    for text in hostile:
        with pytest.raises(TokenError) as refused:
            tokens.read(WALK, text)
        assert refused.value.code in ("malformed_token", "invalid_token"), text[:80]
    assert tokens.read(WALK, token) == {"after": "0001"}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _payload(body: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded
