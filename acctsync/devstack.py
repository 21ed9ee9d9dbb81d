"""`make run`: Azurite, the Dataverse simulator (unless DATAVERSE_URL is set) and the local host.

The stack keeps its identity across restarts, in `.acctsync/` (ACCTSYNC_STATE_DIR):
`devstack.json` holds the ports of Azurite, of the simulator and of the API, the simulator's
credentials and the API key, chosen at the first start; `azurite/` holds the mirror; `sim/`
the simulator's certificates; and `local.settings.json` the settings of the running stack,
which every `acctsync` command in another terminal reads. A port that is really taken stops
the start with a message; a port still in TIME-WAIT after a quick restart is reused. Ctrl-C
stops everything this started.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import uuid
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from acctsync.azurite import start_azurite
from acctsync.localsettings import state_dir, write_values
from acctsync.ports import free_port

DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "api": 7071}
TENANT_DOMAIN = "acctsyncsim.onmicrosoft.com"


class DevStackError(RuntimeError):
    """The stack cannot start as it was; the message says what to do."""


@dataclass
class DevIdentity:
    """What makes this stack the same one after a restart."""

    ports: dict[str, int]
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: f"dev8Q~{secrets.token_urlsafe(30)}")
    username: str = f"syncuser@{TENANT_DOMAIN}"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    control_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @classmethod
    def load_or_create(cls, path: Path) -> DevIdentity:
        if path.exists():
            try:
                return cls(**json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as error:
                raise DevStackError(
                    f"{path} is damaged ({error}): delete it and `make run` chooses new ports "
                    "and credentials (the mirror in .acctsync/azurite stays)"
                ) from None
        ports = {
            name: port if _bindable(port) else free_port() for name, port in DEFAULT_PORTS.items()
        }
        ports.update(sim_api=free_port(), sim_authority=free_port(), sim_control=free_port())
        identity = cls(ports=ports)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(identity), indent=2) + "\n", encoding="utf-8")
        path.chmod(0o600)
        return identity

    def check_ports(self, names: list[str], path: Path) -> None:
        taken = [
            f"{name} 127.0.0.1:{self.ports[name]}"
            for name in names
            if not _bindable(self.ports[name])
        ]
        if taken:
            raise DevStackError(
                f"{', '.join(taken)} is taken by another program (another `make run`, an "
                f"Azurite of your own?): stop it, or delete {path} to choose new ports"
            )


def _bindable(port: int) -> bool:
    """Free to listen on: nothing listening (a port in TIME-WAIT counts as free, as it is for
    a listener with address reuse, which Azurite, the simulator and uvicorn all use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    try:
        identity = DevIdentity.load_or_create(identity_file)
        own_storage = not os.environ.get("AzureWebJobsStorage")
        own_dataverse = not os.environ.get("DATAVERSE_URL")
        identity.check_ports(
            (["blob", "queue", "table"] if own_storage else [])
            + (["sim_api", "sim_authority", "sim_control"] if own_dataverse else [])
            + ([] if os.environ.get("ACCTSYNC_API_PORT") else ["api"]),
            identity_file,
        )
    except DevStackError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    try:
        return _serve(folder, identity, identity_file, own_storage, own_dataverse)
    except KeyboardInterrupt:  # Ctrl-C while starting: what was started is stopped
        print("make run: stopped while starting", file=sys.stderr)
        return 130


def _serve(
    folder: Path,
    identity: DevIdentity,
    identity_file: Path,
    own_storage: bool,
    own_dataverse: bool,
) -> int:
    from acctsync.localhost import run_local_host

    settings: dict[str, str] = {}
    with ExitStack() as stack:
        if own_storage:
            azurite = start_azurite(
                blob_port=identity.ports["blob"],
                queue_port=identity.ports["queue"],
                table_port=identity.ports["table"],
                location=folder / "azurite",
                log_file=folder / "azurite.log",
            )
            stack.callback(azurite.stop)
            settings["AzureWebJobsStorage"] = azurite.connection_string
            print(
                f"Azurite: tables on 127.0.0.1:{azurite.table_port}, "
                f"queues on 127.0.0.1:{azurite.queue_port} (data in {folder / 'azurite'})",
                flush=True,
            )
        if own_dataverse:
            from acctsync.sim.harness import start_simulator

            accounts = int(os.environ.get("ACCTSYNC_DEMO_ACCOUNTS") or 3000)
            contacts = int(os.environ.get("ACCTSYNC_DEMO_CONTACTS") or 30000)
            print("Dataverse simulator: generating demo data...", flush=True)
            simulator = start_simulator(
                accounts=accounts,
                contacts=contacts,
                state_dir=folder / "sim",
                extra_args=_simulator_args(identity, identity_file),
            )
            stack.callback(simulator.stop)
            settings.update((k, v) for k, v in simulator.env.items() if k.startswith("DATAVERSE_"))
            print(f"Dataverse simulator: {simulator.dataverse_url}", flush=True)
        settings.setdefault(
            "ACCTSYNC_API_KEY", os.environ.get("ACCTSYNC_API_KEY") or identity.api_key
        )
        settings.setdefault(
            "ACCTSYNC_API_PORT", os.environ.get("ACCTSYNC_API_PORT") or str(identity.ports["api"])
        )
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


if __name__ == "__main__":
    sys.exit(main())
