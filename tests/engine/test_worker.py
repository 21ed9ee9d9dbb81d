"""The local queue worker follows the host's rules: retries, then the poison queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acctsync.worker import QueueRules, QueueWorker
from shared.services import Services, get_services, reset_services
from shared.storage import BATCH_QUEUE
from shared.sync.status import sync_status
from tests.utils.helpers import TEST_ACTOR


@pytest.fixture
def services(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)
    reset_services()
    yield get_services()
    reset_services()


def test_rules_come_from_host_json() -> None:
    rules = QueueRules.from_host_json()
    assert (rules.max_dequeue_count, rules.visibility_timeout_s) == (5, 30)


def test_a_malformed_batch_ends_in_the_poison_queue(services: Services) -> None:
    services.storage.queue(BATCH_QUEUE).send_message('{"v": 1, "not": "a batch"}')
    worker = QueueWorker(services, QueueRules(max_dequeue_count=3, visibility_timeout_s=0))
    for _ in range(10):
        worker.run_once()
    assert worker.failed == 3
    status = sync_status(services)
    assert status.queue_backlog == 0
    assert status.poison_count == 1


def test_replay_poison_puts_messages_back(services: Services) -> None:
    from shared.sync.status import replay_poison

    services.storage.queue(BATCH_QUEUE).send_message("not a batch")
    worker = QueueWorker(services, QueueRules(max_dequeue_count=1, visibility_timeout_s=0))
    worker.run_once()
    assert sync_status(services).poison_count == 1
    assert replay_poison(services, actor=TEST_ACTOR) == 1
    status = sync_status(services)
    assert (status.poison_count, status.queue_backlog) == (0, 1)
