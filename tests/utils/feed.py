"""What the feed tests share: batches built by hand, and following tokens to the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from azure.data.tables import EdmType, EntityProperty

from shared.mirror.feed_index import Stream
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.times import utcnow
from tests.utils.batches import account, batch, contact, new_id

__all__ = ["account", "batch", "contact", "new_id"]

# What the tests set ACCTSYNC_FEED_SETTLE_SECONDS to (the feeds' wait, shortened).
SETTLE_S = 1.5


def seed_account(services: Services, contacts: int, name: str = "Contoso") -> tuple[str, list[str]]:
    """An account with `contacts` contacts, first-loaded (no activities)."""
    account_id = new_id()
    ids = [new_id() for _ in range(contacts)]
    apply_batch(
        services,
        batch(
            LoadMode.INITIAL,
            [account(account_id, 1, name=name, revenue=1.0)],
            [contact(i, 1, account_id) for i in ids],
        ),
    )
    return account_id, ids


def settle() -> None:
    """Wait until what was written is older than the feeds' safe point."""
    time.sleep(SETTLE_S + 0.2)


def follow(
    get: Callable[[str | None], dict[str, Any]], *, until_caught_up: bool = False
) -> list[dict[str, Any]]:
    """Every item of a walk, following nextPageToken from `get(None)`'s answer; a feed walk
    ends when `moreResult` is false."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(100_000):
        page = get(token)
        items.extend(page["items"])
        token = page["nextPageToken"]
        if token is None or (until_caught_up and not page["moreResult"]):
            return items
    raise AssertionError("the walk did not end")


def api_get(api: httpx.Client, path: str, **params: object) -> Callable[[str | None], Any]:
    def get(token: str | None) -> Any:
        query: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
        if token is not None:
            query["pageToken"] = token
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        return response.json()

    return get


def plant_old_entry(services: Services, at_ms: int, record_id: str) -> None:
    """A deleted-record entry and its unit's stamp as a batch wrote them `at_ms`."""
    services.feed.write([{**services.feed.keys(Stream.DELETED, at_ms, f"contact|{record_id}"),
                          "type": "contact", "id": record_id, "deleted_at": utcnow()}])  # fmt: skip
    services.feed.table.upsert_entity(
        {
            "PartitionKey": "stamps",
            "RowKey": f"unit|{record_id}",
            "at_ms": EntityProperty(at_ms, EdmType.INT64),
        }
    )
