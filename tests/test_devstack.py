"""`make run`'s start when ports are taken by programs that are not its own: it names the port
and the program and offers a fix that keeps the API key and credentials; the API never moves
off 7071 by itself (issue 24, item 2). The restarts after kill -9 are in
tests/faults/test_local_stack.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from acctsync.devstack import DevIdentity
from acctsync.ports import API_PORT, bindable

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def listening(port: int) -> Iterator[None]:
    """Another program on `port` (this test; nothing to hold when someone already does)."""
    if not bindable(port):
        yield
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As bindable() asks: a port in TIME-WAIT (an earlier test's listener) is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def make_run(state: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """`make run`'s start in a state folder of its own; with storage and Dataverse given, a
    start that went past its checks would only run the host (ended by the timeout)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATAVERSE_", "AzureWebJobsStorage", "ACCTSYNC_"))
    }
    env.update(ACCTSYNC_STATE_DIR=str(state), **extra)
    return subprocess.run(
        [sys.executable, "-m", "acctsync.devstack"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_azurite_port_held_by_another_program_names_it_and_a_fix_that_keeps_the_key(
    tmp_path: Path,
) -> None:
    identity_file = tmp_path / "devstack.json"
    identity = DevIdentity.load_or_create(identity_file)
    before = identity_file.read_text()
    table = identity.ports["table"]
    with listening(table):
        done = make_run(tmp_path, DATAVERSE_URL="https://example.invalid")
    assert done.returncode == 2, done.stderr
    # The holder is this test's own process: named by its program name and pid.
    holder = f"{psutil.Process().name()}, pid {os.getpid()})"
    assert f"port {table} (Azurite's tables) is taken by another program ({holder}" in done.stderr
    assert "ACCTSYNC_NEW_PORTS=1 make run" in done.stderr
    assert "delete" not in done.stderr
    assert identity_file.read_text() == before


def test_new_ports_moves_only_the_taken_ones_and_keeps_the_credentials(tmp_path: Path) -> None:
    identity_file = tmp_path / "devstack.json"
    identity = DevIdentity.load_or_create(identity_file)
    table = identity.ports["table"]
    with listening(table):
        identity.check_ports(["blob", "queue", "table"], identity_file, move=True)
    kept = json.loads(identity_file.read_text())
    assert kept["ports"]["table"] != table and bindable(kept["ports"]["table"])
    assert kept["ports"]["blob"] == identity.ports["blob"]
    assert kept["api_key"] == identity.api_key and kept["password"] == identity.password


def test_a_taken_7071_stops_the_start_instead_of_moving_the_api(tmp_path: Path) -> None:
    with listening(API_PORT):
        done = make_run(
            tmp_path,
            AzureWebJobsStorage="UseDevelopmentStorage=true",
            DATAVERSE_URL="https://example.invalid",
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {API_PORT} (the API and admin console) is taken by another" in done.stderr
    assert "ACCTSYNC_API_PORT=" in done.stderr
    assert "api" not in json.loads((tmp_path / "devstack.json").read_text())["ports"]


def test_a_malformed_api_port_is_said_plainly(tmp_path: Path) -> None:
    done = make_run(
        tmp_path,
        AzureWebJobsStorage="UseDevelopmentStorage=true",
        DATAVERSE_URL="https://example.invalid",
        ACCTSYNC_API_PORT="70x1",
    )
    assert done.returncode == 2
    assert "ACCTSYNC_API_PORT='70x1' is not a port number" in done.stderr
    assert "Traceback" not in done.stderr
