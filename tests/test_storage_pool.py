"""Storage clients keep a connection for every thread that sends through them at once: a pool
smaller than that makes urllib3 drop a connection after each request and log a warning that
buries the progress bars (issue 24, item 5)."""

from __future__ import annotations

import logging
import threading

import pytest

from shared.mirror.records import MirroredRecords, bucket
from shared.settings import StorageSettings
from shared.storage import ACCOUNTS_TABLE, Storage


def test_parallel_reads_of_two_workers_log_no_pool_warning(
    storage_connection: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = Storage(StorageSettings(connection_string=storage_connection))
    storage.ensure()
    records = MirroredRecords(storage.table(ACCOUNTS_TABLE))
    ids = [f"{number:08d}-0000-0000-0000-000000000000" for number in range(200)]
    records.upsert_all({"PartitionKey": bucket(i), "RowKey": i, "name": i} for i in ids)
    found: list[int] = []

    def worker() -> None:  # as a queue worker's apply reads the rows of its batch
        found.append(len(records.get_many(ids)))

    caplog.set_level(logging.WARNING, logger="urllib3")
    try:
        # Two queue workers and the re-load's fan-out: the io pool's threads all at once.
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        storage.close()
    assert found == [200] * 4
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert not full, f"{len(full)} x {full[:1]}"
