"""Helpers shared by the tests."""

from __future__ import annotations

import contextlib
import io

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from acctsync.cli import main as cli_main
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import MirroredRecords
from shared.state.audit import Actor, ActorKind

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
