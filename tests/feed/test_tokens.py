"""Paging tokens through the API: a malformed, changed, foreign or expired one is a 400 with
the contract's error shape, and nothing is read. (The tokens alone: tests/unit/test_page_tokens.py.)
"""

from __future__ import annotations

import time

import httpx

from shared.mirror.tokens import Walk
from shared.services import Services


def test_the_api_refuses_bad_tokens_with_a_400(mirror: Services, feed_api: httpx.Client) -> None:
    start = feed_api.get("/api/activities/pagingtoken", params={"since": "2026-01-01T00:00:00Z"})
    feed_token = start.json()["nextPageToken"]
    contacts = feed_api.get("/api/contacts", params={"limit": 1}).json()
    assert contacts == {"items": [], "nextPageToken": None}
    body, mac = feed_token.split(".")
    expired = mirror.page_tokens.issue(
        Walk.of("activities"), {"after": "0"}, now=time.time() - 8 * 86400
    )
    refused = {
        ("/api/activities", f"{body}.{mac[::-1]}"): "invalid_token",
        ("/api/activities", "garbage"): "malformed_token",
        ("/api/activities", expired): "expired_token",
        ("/api/deleted", feed_token): "token_mismatch",
        ("/api/contacts", feed_token): "token_mismatch",
        ("/api/accounts", "garbage"): "malformed_token",
    }
    for (path, token), code in refused.items():
        response = feed_api.get(path, params={"pageToken": token})
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        assert (error["code"], "pageToken" in error["message"]) == (code, True), error
    bad_time = feed_api.get("/api/activities/pagingtoken", params={"since": "yesterday"})
    assert bad_time.status_code == 422 and bad_time.json()["error"]["code"] == "invalid_time"
    openapi = feed_api.get("/api/openapi.json").json()
    page = openapi["components"]["schemas"]["ActivityPage"]
    assert (
        "moreResult" in page["properties"]
        and "pageToken" in page["properties"]["nextPageToken"]["description"]
    )
