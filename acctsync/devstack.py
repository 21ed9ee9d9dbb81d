"""`make run`: Azurite, the Dataverse simulator (unless DATAVERSE_URL is set) and the local host.

The stack keeps its identity across restarts, in `.acctsync/` (ACCTSYNC_STATE_DIR):
`devstack.json` holds the ports of Azurite, of the simulator and of the API, the simulator's
credentials and the API key, chosen at the first start, and the processes the running stack
started; `azurite/` holds the mirror; `sim/` the simulator's certificates; and
`local.settings.json` the settings of the running stack, which every `acctsync` command in
another terminal reads.

A start finds what an earlier one left: while its host runs, it says so and where; when the
host died without stopping them (SIGKILL, a closed terminal), it stops the Azurite and
simulator it had started and takes their ports again. A port held by another program stops the
start with who holds it and how to choose another (nothing in .acctsync/ is ever to delete); a
port in TIME-WAIT after a quick restart is reused. The API is on 7071 unless ACCTSYNC_API_PORT
says otherwise: it never moves by itself. Ctrl-C stops everything this started.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from acctsync.azurite import start_azurite
from acctsync.devprocs import RecordedProcess, Role, stop_process
from acctsync.localsettings import LocalSettingsError, read_values, state_dir, write_values
from acctsync.ports import (
    API_HOST,
    API_PORT,
    ApiPortError,
    api_port,
    bindable,
    free_port,
    port_taken,
)

DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
PORT_USES = {
    "blob": "Azurite's blobs",
    "queue": "Azurite's queues",
    "table": "Azurite's tables",
    "sim_api": "the simulator's Web API",
    "sim_authority": "the simulator's sign-in authority",
    "sim_control": "the simulator's control surface",
}
TENANT_DOMAIN = "acctsyncsim.onmicrosoft.com"
# Set to 1 to move Azurite and the simulator off ports other programs took.
NEW_PORTS_VARIABLE = "ACCTSYNC_NEW_PORTS"


class DevStackError(RuntimeError):
    """The stack cannot start as it was; the message says what to do."""


@dataclass
class DevIdentity:
    """What makes this stack the same one after a restart, and the processes it runs."""

    ports: dict[str, int]
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: f"dev8Q~{secrets.token_urlsafe(30)}")
    username: str = f"syncuser@{TENANT_DOMAIN}"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    control_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: dict[Role, RecordedProcess] = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, path: Path) -> DevIdentity:
        if path.exists():
            try:
                values = json.loads(path.read_text(encoding="utf-8"))
                recorded = values.pop("processes", {})
                processes = {Role(role): RecordedProcess(**p) for role, p in recorded.items()}
                return cls(**values, processes=processes)
            except (ValueError, TypeError) as error:
                raise DevStackError(
                    f"{path} is damaged ({error}): repair it, or move it aside (it holds the "
                    "API key and the simulator's credentials) and `make run` chooses new ports "
                    "and credentials (the mirror in .acctsync/azurite stays)"
                ) from None
        # Azurite's usual ports when free, else any: only this stack's settings name them.
        # (The API's port is not chosen here: it is 7071 or ACCTSYNC_API_PORT, never moved.)
        ports = {
            name: port if bindable(port) else free_port() for name, port in DEFAULT_PORTS.items()
        }
        ports.update(sim_api=free_port(), sim_authority=free_port(), sim_control=free_port())
        identity = cls(ports=ports)
        identity.save(path)
        return identity

    def save(self, path: Path) -> None:
        """Write it whole or not at all: a kill mid-write must not lose the key."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.unlink(missing_ok=True)  # created afresh below: private from its first byte
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(partial, path)

    def record(self, role: Role, pid: int, path: Path) -> None:
        self.processes[role] = RecordedProcess.of(pid)
        self.save(path)

    def forget_processes(self, path: Path) -> None:
        self.processes.clear()
        self.save(path)

    def running_host(self) -> RecordedProcess | None:
        """The host of a `make run` that still runs from this folder, if one does."""
        host = self.processes.get(Role.HOST)
        return host if host is not None and host.running() is not None else None

    def stop_orphans(self, path: Path) -> None:
        """Stop what a host that died (SIGKILL, a closed terminal) left running, so that its
        ports and Azurite's data are this start's again; forget the records."""
        for role, recorded in self.processes.items():
            process = recorded.running()
            if process is not None and role is not Role.HOST:
                print(
                    f"make run: stopping {role.label} (pid {recorded.pid}), left running by a "
                    "`make run` that was killed",
                    file=sys.stderr,
                    flush=True,
                )
                stop_process(process)
        if self.processes:
            self.forget_processes(path)

    def check_ports(self, names: list[str], path: Path, *, move: bool) -> None:
        """Every port free to listen on, or a message naming who holds which and the fix;
        `move` gives the taken ones free ports instead, kept for the next starts."""
        taken = [name for name in names if not bindable(self.ports[name])]
        if taken and move:
            for name in taken:
                moved = free_port()
                print(f"make run: {PORT_USES[name]} moves from port {self.ports[name]} to {moved}")
                self.ports[name] = moved
            if "sim_api" in taken:
                print(
                    "make run: the simulator's URL changes with its port; if a cycle then says "
                    "the mirror was built from another Dataverse, `acctsync reset-cursors` "
                    "reads it again in full"
                )
            self.save(path)
            return
        if taken:
            held = "; ".join(port_taken(self.ports[name], PORT_USES[name]) for name in taken)
            raise DevStackError(
                f"{held}: stop {'it' if len(taken) == 1 else 'them'}, or let "
                f"`{NEW_PORTS_VARIABLE}=1 make run` move the stack's own services to free "
                "ports (the mirror, the credentials and the API key stay)"
            )


def _simulator_args(identity: DevIdentity, identity_file: Path) -> list[str]:
    """The simulator's ports, and its credentials from the identity file (secrets stay off
    the command line, where any local user could read them)."""
    ports = identity.ports
    return [
        "--demo-churn",
        "--port", str(ports["sim_api"]),
        "--authority-port", str(ports["sim_authority"]),
        "--control-port", str(ports["sim_control"]),
        "--credentials-file", str(identity_file),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from acctsync.cli import configure_logging

    verbose = "--verbose" in (sys.argv[1:] if argv is None else argv)
    configure_logging(verbose=verbose)
    folder = state_dir()
    identity_file = folder / "devstack.json"
    own_storage = not os.environ.get("AzureWebJobsStorage")
    own_dataverse = not os.environ.get("DATAVERSE_URL")
    try:
        identity = DevIdentity.load_or_create(identity_file)
        if (host := identity.running_host()) is not None:
            raise DevStackError(
                f"acctsync is already running: console at {_running_console(folder)} (pid "
                f"{host.pid}); stop it with Ctrl-C in its terminal or `kill {host.pid}`"
            )
        identity.stop_orphans(identity_file)
        identity.check_ports(
            (["blob", "queue", "table"] if own_storage else [])
            + (["sim_api", "sim_authority", "sim_control"] if own_dataverse else []),
            identity_file,
            move=os.environ.get(NEW_PORTS_VARIABLE) == "1",
        )
        port = api_port()  # taken or malformed: said before anything starts
    except (DevStackError, ApiPortError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    try:
        return _serve(folder, identity, identity_file, own_storage, own_dataverse, port)
    except KeyboardInterrupt:  # Ctrl-C while starting: what was started is stopped
        print("make run: stopped while starting", file=sys.stderr)
        return 130


def _running_console(folder: Path) -> str:
    """The console of the stack running from this folder, from the settings it wrote."""
    try:
        port = read_values(folder / "local.settings.json").get("ACCTSYNC_API_PORT")
    except LocalSettingsError:
        port = None
    return f"http://{API_HOST}:{port or API_PORT}/"


def _serve(
    folder: Path,
    identity: DevIdentity,
    identity_file: Path,
    own_storage: bool,
    own_dataverse: bool,
    port: int,
) -> int:
    from acctsync.localhost import run_local_host

    settings: dict[str, str] = {}
    with ExitStack() as stack:
        # Recorded before anything starts, forgotten after all has stopped (the callbacks run
        # last first): a start that finds a record knows whether its host is still there.
        identity.record(Role.HOST, os.getpid(), identity_file)
        stack.callback(identity.forget_processes, identity_file)
        if own_storage:
            settings.update(_start_azurite(stack, folder, identity, identity_file))
        if own_dataverse:
            settings.update(_start_simulator(stack, folder, identity, identity_file))
        settings.setdefault(
            "ACCTSYNC_API_KEY", os.environ.get("ACCTSYNC_API_KEY") or identity.api_key
        )
        settings.setdefault("ACCTSYNC_API_PORT", str(port))
        for name, value in settings.items():
            os.environ.setdefault(name, value)
        print(f"ACCTSYNC_API_KEY={os.environ['ACCTSYNC_API_KEY']} (kept in {identity_file})")
        write_values(folder / "local.settings.json", {k: os.environ[k] for k in settings})
        print(
            f"settings of this stack: {folder / 'local.settings.json'} (every acctsync command "
            "in another terminal reads them)",
            flush=True,
        )
        return run_local_host()


def _start_azurite(
    stack: ExitStack, folder: Path, identity: DevIdentity, identity_file: Path
) -> dict[str, str]:
    azurite = start_azurite(
        blob_port=identity.ports["blob"],
        queue_port=identity.ports["queue"],
        table_port=identity.ports["table"],
        location=folder / "azurite",
        log_file=folder / "azurite.log",
        on_spawn=lambda pid: identity.record(Role.AZURITE, pid, identity_file),
    )
    stack.callback(azurite.stop)
    print(
        f"Azurite: tables on 127.0.0.1:{azurite.table_port}, "
        f"queues on 127.0.0.1:{azurite.queue_port} (data in {folder / 'azurite'})",
        flush=True,
    )
    return {"AzureWebJobsStorage": azurite.connection_string}


def _start_simulator(
    stack: ExitStack, folder: Path, identity: DevIdentity, identity_file: Path
) -> dict[str, str]:
    from acctsync.sim.harness import start_simulator

    accounts = int(os.environ.get("ACCTSYNC_DEMO_ACCOUNTS") or 3000)
    contacts = int(os.environ.get("ACCTSYNC_DEMO_CONTACTS") or 30000)
    print("Dataverse simulator: generating demo data...", flush=True)
    simulator = start_simulator(
        accounts=accounts,
        contacts=contacts,
        state_dir=folder / "sim",
        extra_args=_simulator_args(identity, identity_file),
        on_spawn=lambda pid: identity.record(Role.SIMULATOR, pid, identity_file),
    )
    stack.callback(simulator.stop)
    print(f"Dataverse simulator: {simulator.dataverse_url}", flush=True)
    return {k: v for k, v in simulator.env.items() if k.startswith("DATAVERSE_")}


if __name__ == "__main__":
    sys.exit(main())
