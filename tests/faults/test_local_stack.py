"""`make run` as a new user meets it: started, stopped with Ctrl-C and started again within
seconds (ports in TIME-WAIT), with the CLI used from another terminal beside it; started twice;
killed with SIGKILL and started again; its terminal closed (SIGHUP).

The stack runs as `python -m acctsync.devstack` (what `make run` runs) in a state folder of
its own, with small demo data and a fast heartbeat.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from acctsync.devprocs import RecordedProcess
from acctsync.ports import free_port
from acctsync.sim.harness import SimulatorControl
from tests.utils.faults import ACCTSYNC, Figures, Process, wait_until

_CYCLE = re.compile(r"^cycle (succeeded|incomplete|failed) in ")


def stack_env(state: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATAVERSE_", "AzureWebJobsStorage", "ACCTSYNC_", "SYNC_", "SIM_"))
    }
    env.update(
        ACCTSYNC_STATE_DIR=str(state),
        ACCTSYNC_DEMO_ACCOUNTS="40",
        ACCTSYNC_DEMO_CONTACTS="400",
        ACCTSYNC_HEARTBEAT_SECONDS="1",
        SYNC_INTERVAL_MINUTES="0.05",
    )
    env.update(extra)
    return env


def start_stack(env: dict[str, str]) -> Process:
    return Process.start([ACCTSYNC[0], "-m", "acctsync.devstack"], env, stderr=subprocess.STDOUT)


def ctrl_c(stack: Process) -> int:
    stack.popen.send_signal(signal.SIGINT)
    # The host gives itself 20 s to drain; the rest is for a machine busy with other tests.
    return stack.finish(timeout=120)


def cycles(stack: Process) -> list[str]:
    return [line for line in stack.lines if _CYCLE.match(line)]


def wait_for_cycles(stack: Process, count: int, *, timeout: float) -> None:
    wait_until(
        lambda: len(cycles(stack)) >= count or stack.popen.poll() is not None,
        timeout=timeout,
        what=f"{count} finished cycles",
    )
    assert len(cycles(stack)) >= count, "\n".join(stack.lines[-40:])


def line_with(stack: Process, prefix: str) -> str:
    return next(line for line in stack.lines if line.startswith(prefix))


def identity_of(state: Path) -> dict[str, Any]:
    """What devstack.json keeps across restarts (all but the processes of the running stack)."""
    kept: dict[str, Any] = json.loads((state / "devstack.json").read_text())
    kept.pop("processes", None)
    return kept


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ACCTSYNC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_run_survives_restarts_and_the_cli_works_beside_it(
    tmp_path: Path, figures: Figures
) -> None:
    state = tmp_path / "state"
    env = stack_env(state, ACCTSYNC_API_PORT=str(free_port()))
    first = start_stack(env)
    try:
        wait_for_cycles(first, 1, timeout=180)
        assert cycles(first)[0].startswith("cycle succeeded"), cycles(first)
    finally:
        assert ctrl_c(first) == 0, "\n".join(first.lines[-30:])
    stopped_at = time.monotonic()
    identity = identity_of(state)

    # Started again at once: the ports of the first start are in TIME-WAIT.
    second = start_stack(env)
    try:
        wait_for_cycles(second, 1, timeout=180)
        restart_s = time.monotonic() - stopped_at
        for prefix in ("Azurite:", "Dataverse simulator: https", "ACCTSYNC_API_KEY="):
            assert line_with(first, prefix) == line_with(second, prefix)
        assert identity_of(state) == identity
        assert not any("another host" in line for line in second.lines)

        # A change made in Dynamics after the restart syncs.
        ports = identity["ports"]
        control = SimulatorControl(
            f"http://127.0.0.1:{ports['sim_control']}", identity["control_key"]
        )
        (account_id, *_) = [a["accountid"] for a in control.stats()["largest_accounts"]]
        control.update_account(account_id, {"name": "Renamed after the restart"})
        control.close()

        # The CLI in another terminal: nothing but the stack's settings file, found from its
        # state folder; then a user's own local.settings.json in another folder.
        bare = {k: v for k, v in env.items() if k not in ("ACCTSYNC_API_PORT",)}
        bare = {k: v for k, v in bare.items() if not k.startswith(("SYNC_", "ACCTSYNC_HEART"))}

        def synced() -> bool:
            done = cli(["status"], bare, tmp_path)
            assert done.returncode == 0, done.stderr
            return any(c.get("accounts_changed") for c in json.loads(done.stdout)["last_cycles"])

        wait_until(synced, timeout=120, every=1, what="the change synced")
        user = tmp_path / "user"
        user.mkdir()
        values = json.loads((state / "local.settings.json").read_text())["Values"]
        (user / "local.settings.json").write_text(
            json.dumps({"IsEncrypted": False, "Values": values})
        )
        alone = {k: v for k, v in bare.items() if k != "ACCTSYNC_STATE_DIR"}
        alone["ACCTSYNC_STATE_DIR"] = str(user / ".acctsync")  # no stack state there
        listed = cli(["fields", "list"], alone, user)
        assert listed.returncode == 0, listed.stderr
        assert any(f["name"] == "name" and f["selected"] for f in json.loads(listed.stdout))
        status = json.loads(cli(["status"], alone, user).stdout)
        assert status["health"]["verdict"] == "healthy"
        figures.record(
            "local_stack_restart",
            same_ports_and_key_after_restart=True,
            restart_to_first_cycle_s=round(restart_s, 1),
            cli_from_another_folder=True,
        )
    finally:
        assert ctrl_c(second) == 0, "\n".join(second.lines[-30:])


def test_ctrl_c_mid_load_then_start_again_goes_on_at_once(tmp_path: Path, figures: Figures) -> None:
    state = tmp_path / "state"
    env = stack_env(
        state,
        ACCTSYNC_API_PORT=str(free_port()),
        ACCTSYNC_DEMO_ACCOUNTS="300",
        ACCTSYNC_DEMO_CONTACTS="9000",
        ACCTSYNC_PAGE_SIZE="50",
    )
    status_env = {k: v for k, v in env.items()}

    def status() -> dict[str, object]:
        done = cli(["status"], status_env, tmp_path)
        # While the stack starts, its storage is not there yet: nothing read so far.
        return json.loads(done.stdout) if done.returncode == 0 else {"checkpoints": {}}

    def contacts_read() -> int:
        checkpoint = status()["checkpoints"]
        assert isinstance(checkpoint, dict)
        return int(checkpoint.get("contacts", {}).get("rows_read", 0))

    seen = [0]

    def mid_load() -> bool:
        seen[0] = max(seen[0], contacts_read())
        return seen[0] >= 1000

    first = start_stack(env)
    try:
        wait_until(mid_load, timeout=180, every=0.5, what="mid-load")
    finally:
        assert ctrl_c(first) == 0, "\n".join(first.lines[-30:])
    read_at_stop = seen[0]
    assert 0 < read_at_stop < 9000
    restarted = time.monotonic()
    second = start_stack(env)
    try:
        wait_until(
            lambda: contacts_read() > read_at_stop or bool(cycles(second)),
            timeout=60,
            every=0.5,
            what="the load going on",
        )
        went_on_s = time.monotonic() - restarted
        # Well within the planning lease (60 s): the stopped host gave it back.
        assert went_on_s < 45, went_on_s
        wait_for_cycles(second, 1, timeout=240)
        (done, *_) = cycles(second)
        assert done.startswith("cycle succeeded") and "9,000 contacts" in done, done
        assert status()["queue_backlog"] == 0
        figures.record(
            "ctrl_c_mid_load",
            contacts_read_when_stopped=read_at_stop,
            seconds_until_the_load_went_on=round(went_on_s, 1),
        )
    finally:
        assert ctrl_c(second) == 0, "\n".join(second.lines[-30:])


def test_a_second_make_run_says_one_runs_and_one_after_kill_9_starts_cleanly(
    tmp_path: Path, figures: Figures
) -> None:
    state = tmp_path / "state"
    port = free_port()
    env = stack_env(state, ACCTSYNC_API_PORT=str(port))
    first = start_stack(env)
    try:
        wait_for_cycles(first, 1, timeout=180)
        second = start_stack(env)
        assert second.finish(timeout=60) != 0
        said = "\n".join(second.lines)
        assert (
            f"acctsync is already running: console at http://127.0.0.1:{port}/ "
            f"(pid {first.popen.pid}); stop it with Ctrl-C in its terminal or "
            f"`kill {first.popen.pid}`"
        ) in said, said
        assert first.popen.poll() is None
        recorded = json.loads((state / "devstack.json").read_text())["processes"]
        children = {role: RecordedProcess(**recorded[role]) for role in ("azurite", "simulator")}
    finally:
        first.popen.kill()  # SIGKILL: nothing of its own stops Azurite or the simulator
        first.finish(timeout=60)
    identity = identity_of(state)
    assert all(child.running() for child in children.values()), "no orphans to recover from"

    restarted = time.monotonic()
    third = start_stack(env)
    try:
        wait_for_cycles(third, 1, timeout=180)
        restart_s = time.monotonic() - restarted
        assert cycles(third)[0].startswith("cycle succeeded"), cycles(third)
        for prefix in ("Azurite:", "ACCTSYNC_API_KEY="):
            assert line_with(first, prefix) == line_with(third, prefix)
        assert identity_of(state) == identity
        for role, child in children.items():
            assert child.running() is None, f"the orphaned {role} still runs"
            assert any(f"(pid {child.pid}), left running" in line for line in third.lines)
        recorded = json.loads((state / "devstack.json").read_text())["processes"]
        figures.record(
            "local_stack_kill_9",
            same_ports_and_key_after_kill_9=True,
            orphans_stopped=len(children),
            restart_to_first_cycle_s=round(restart_s, 1),
        )
    finally:
        # Its terminal closed: it stops everything it started, as with Ctrl-C.
        third.popen.send_signal(signal.SIGHUP)
        assert third.finish(timeout=120) == 0, "\n".join(third.lines[-30:])
    assert json.loads((state / "devstack.json").read_text())["processes"] == {}
    for role in ("azurite", "simulator"):
        assert RecordedProcess(**recorded[role]).running() is None, f"{role} outlived SIGHUP"
