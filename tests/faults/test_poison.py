"""Claim 5: a batch that cannot be applied ends in the poison queue after host.json's
maxDequeueCount attempts, `acctsync status` shows it, and once the cause is fixed
`acctsync replay-poison` puts it back and it applies; a malformed message stays poison.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient

from acctsync.sim.harness import SimulatorHandle
from acctsync.worker import QueueRules, QueueWorker
from shared.mirror.records import fields_of
from shared.services import Services
from shared.storage import ACTIVITIES_TABLE, BATCH_QUEUE
from shared.sync.cycle import heartbeat, queue_backlog
from tests.utils.faults import Figures, Oracle, cycle_by_stages, plan_only, run
from tests.utils.helpers import make_account, summary_of


def status(env: dict[str, str]) -> dict[str, Any]:
    done = run(["status"], env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def work_until_idle(worker: QueueWorker, services: Services) -> None:
    """Run the worker until nothing is left to retry (failed batches come back after 1 s)."""
    deadline = time.monotonic() + 60
    while queue_backlog(services):
        assert time.monotonic() < deadline, "the queue never emptied"
        if not worker.run_once():
            time.sleep(0.2)


def test_poison_batch_is_shown_and_replayed_once_fixed(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    env: dict[str, str],
    storage_connection: str,
    figures: Figures,
) -> None:
    rules = replace(QueueRules.from_host_json(), visibility_timeout_s=1)
    assert rules.max_dequeue_count == 5
    worker = QueueWorker(services, rules)
    account_id, contacts = make_account(simulator, "Contoso", 3)
    cycle_by_stages(services, lambda: work_until_idle(worker, services))

    # A malformed message, and a real batch whose apply fails: an operator deleted the
    # activity table it writes to.
    services.storage.queue(BATCH_QUEUE).send_message('{"v": 1, "cycle": "x", "accounts": 7}')
    simulator.control.update_account(account_id, {"name": "Contoso Renamed"})
    plan_only(services)
    with TableServiceClient.from_connection_string(storage_connection) as tables:
        tables.delete_table(ACTIVITIES_TABLE)
    failed_before = worker.failed
    work_until_idle(worker, services)
    attempts = worker.failed - failed_before
    assert attempts == 2 * rules.max_dequeue_count
    shown = status(env)
    assert shown["poison_count"] == 2 and shown["queue_backlog"] == 0
    # The cycle does not hang on it: it finishes, incomplete, and says a batch did not apply.
    finished = heartbeat(services, owner="faults")
    assert finished.action == "finished"
    summary = summary_of(finished)
    assert summary.batches == 1 and summary.batches_applied == 0
    assert (summary.status, summary.batches_poisoned) == ("incomplete", 1)
    assert summary.errors >= 1
    shown = status(env)
    (last, *_) = shown["last_cycles"]
    assert (last["status"], last["batches_poisoned"]) == ("incomplete", 1)
    (error, *_) = [e for e in shown["last_errors"] if e["entity"] == "batch"]
    assert "poison" in error["message"] and "replay-poison" in error["message"]
    row = services.accounts.get(account_id)
    assert row is not None and fields_of(row)["name"] == "Contoso"  # nothing half-applied

    # The cause is fixed: the table is back (any acctsync process creates missing tables when
    # it starts, as `status` just did; an operator may also create it). Replay: the batch
    # applies, the malformed message goes back to poison.
    with (
        TableServiceClient.from_connection_string(storage_connection) as tables,
        contextlib.suppress(ResourceExistsError),
    ):
        tables.create_table(ACTIVITIES_TABLE)
    replayed = run(["replay-poison"], env)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {"replayed": 2}
    work_until_idle(worker, services)
    row = services.accounts.get(account_id)
    assert row is not None and fields_of(row)["name"] == "Contoso Renamed"
    for contact_id in contacts:
        (activity,) = services.activities.for_contact(contact_id)
        assert (activity["old"], activity["new"]) == ("Contoso", "Contoso Renamed")
    assert status(env)["poison_count"] == 1  # the malformed one, back after 5 more attempts
    oracle.verify(services)  # faults over: the mirror equals Dynamics
    figures.record(
        "poison",
        max_dequeue_count=rules.max_dequeue_count,
        failed_attempts_before_poison=attempts,
        poison_count_shown=2,
        replayed=2,
        applied_after_replay=1,
        malformed_back_in_poison=1,
    )
