"""Helpers shared by the tests: accounts made in the simulator, storage wiped, the CLI in
process, and values too long for one property or one entity."""

from __future__ import annotations

import contextlib
import io
import time

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from acctsync.cli import main as cli_main
from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import MirroredRecords
from shared.services import Services
from shared.state.audit_trail import Actor, ActorKind
from shared.state.summary import CycleSummary
from shared.state.sync_errors import ErrorCode
from shared.sync.cycle import Heartbeat
from shared.sync.select_fields import select_fields

API_KEY = "test-key-not-a-secret"
# Who the tests' direct calls of admin actions are, in the audit trail.
TEST_ACTOR = Actor(ActorKind.CLI, "tests@acctsync")


def wipe_storage(connection: str) -> None:
    """Remove every table and queue of a storage account."""
    with TableServiceClient.from_connection_string(connection) as tables:
        for table in tables.list_tables():
            tables.delete_table(table.name)
    with QueueServiceClient.from_connection_string(connection) as queues:
        for queue in queues.list_queues():
            queues.delete_queue(queue.name)


def make_account(
    simulator: SimulatorHandle, name: str, contacts: int, **fields: object
) -> tuple[str, list[str]]:
    """An account with `contacts` contacts, created in Dynamics (the simulator)."""
    (account_id,) = simulator.control.create_accounts([{"name": name, "revenue": 1000.0, **fields}])
    contact_ids = (
        simulator.control.create_contacts(
            [
                {
                    "firstname": name,
                    "lastname": f"person {i}",
                    "parentcustomerid": account_id,
                    "parentcustomertype": "account",
                }
                for i in range(contacts)
            ]
        )
        if contacts
        else []
    )
    return account_id, contact_ids


def live_ids(records: MirroredRecords) -> list[str]:
    """Every mirrored id not flagged deleted (a full scan)."""
    return [
        str(row["RowKey"])
        for row in records.table.list_entities(select=["RowKey", "is_deleted"])
        if not row.get("is_deleted")
    ]


def call_cli(argv: list[str]) -> tuple[int, str]:
    """`acctsync ARGV` in this process: its exit code and what it wrote on stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else 1
    return code, err.getvalue()


def settle() -> None:
    """Dynamics dates changes to the second: a change made in the second a cycle's read began
    counts as pending. Let that second pass before the cycle."""
    time.sleep(1.1)


# An account note of ~200 kB: more than one property holds, less than an entity holds.
LONG = "".join(f"line {n:06d} of a very long account note\n" for n in range(5_000))


TOO_LARGE = "x" * 600_000  # 1.2 MB as UTF-16: more than a Table Storage entity holds


def unstorable_accounts(simulator: SimulatorHandle, services: Services) -> tuple[str, str]:
    """Two mirrored accounts whose latest change in Dynamics the mirror could not hold, and
    a poisoned batch's error next to them."""
    select_fields(services, ["name", "new_longnotes"], actor=TEST_ACTOR)
    fixed_id, _ = make_account(simulator, "Fixed", 2)
    broken_id, _ = make_account(simulator, "Broken", 1)
    run_cycle_now(services)
    for account_id in (fixed_id, broken_id):
        simulator.control.update_account(account_id, {"new_longnotes": TOO_LARGE})
    assert run_cycle_now(services).errors == 2
    services.errors.record(
        entity="batch",
        record_id="b-7",
        operation="apply",
        message="the batch failed 5 times",
        cycle_id="c-1",
        code=ErrorCode.BATCH_POISONED,
    )
    simulator.control.update_account(fixed_id, {"new_longnotes": "Short notes"})
    return fixed_id, broken_id


def summary_of(beat: Heartbeat) -> CycleSummary:
    """The summary of the cycle a heartbeat closed; the test fails when it closed none."""
    assert beat.summary is not None, f"the heartbeat {beat.action!r} closed no cycle"
    return beat.summary
