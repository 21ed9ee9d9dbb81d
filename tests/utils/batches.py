"""Batches built by hand, and services on Azurite alone to apply them to."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from shared.mapping import ColumnType
from shared.services import Services
from shared.settings import Settings
from shared.state.schedule import LoadMode
from shared.sync.apply import apply_batch
from shared.sync.batches import AccountChange, Batch, ContactChange

COLUMNS = {
    "name": ColumnType.STRING,
    "revenue": ColumnType.MONEY,
    "industrycode": ColumnType.CHOICE,
}


@pytest.fixture
def services(storage_connection: str) -> Iterator[Services]:
    env = {"AzureWebJobsStorage": storage_connection, "ACTIVITY_CONTACT_LIMIT": "3"}
    services = Services(Settings.from_env(env)).ready()
    yield services
    services.close()


def new_id() -> str:
    return str(uuid.uuid4())


def account(account_id: str, version: int, **values: object) -> AccountChange:
    return AccountChange(account_id, version, "2026-11-25T10:00:00Z", dict(values))


def contact(
    contact_id: str, version: int, parent: str | None, ptype: str = "account"
) -> ContactChange:
    return ContactChange(
        contact_id,
        version,
        parent_id=parent,
        parent_type=ptype if parent else None,
        modified_on="2026-11-25T10:00:00Z",
        values={"fullname": "A B"},
    )


def batch(
    mode: LoadMode = LoadMode.DELTA,
    accounts: list[AccountChange] | None = None,
    contacts: list[ContactChange] | None = None,
) -> str:
    return Batch(
        "cycle-1", uuid.uuid4().hex, mode, COLUMNS, accounts or [], contacts or []
    ).encode()


def seed(services: Services, account_id: str, contacts: int) -> list[str]:
    ids = [new_id() for _ in range(contacts)]
    apply_batch(
        services,
        batch(
            LoadMode.INITIAL,
            [account(account_id, 1, name="Contoso", revenue=10.0, industrycode=1)],
            [contact(i, 1, account_id) for i in ids],
        ),
    )
    return ids
