"""`make run`: Azurite, the Dataverse simulator (unless DATAVERSE_URL is set) and the local host.

Azurite keeps its data in .acctsync/azurite so the mirror survives a restart; the simulator
starts with demo data and keeps changing a few accounts every minute. Ctrl-C stops everything
this started.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from contextlib import ExitStack
from pathlib import Path

from acctsync.azurite import PROJECT_ROOT, start_azurite

STATE_DIR = PROJECT_ROOT / ".acctsync"


def _port_or_free(preferred: int) -> int | None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return None
    return preferred


def main() -> int:
    from acctsync.localhost import run_local_host

    with ExitStack() as stack:
        if not os.environ.get("AzureWebJobsStorage"):
            azurite = start_azurite(
                blob_port=_port_or_free(10000),
                queue_port=_port_or_free(10001),
                table_port=_port_or_free(10002),
                location=STATE_DIR / "azurite",
                log_file=STATE_DIR / "azurite.log",
            )
            stack.callback(azurite.stop)
            os.environ["AzureWebJobsStorage"] = azurite.connection_string
            print(
                f"Azurite: tables on 127.0.0.1:{azurite.table_port}, "
                f"queues on 127.0.0.1:{azurite.queue_port}",
                flush=True,
            )
        if not os.environ.get("DATAVERSE_URL"):
            from acctsync.sim.harness import start_simulator

            print("Dataverse simulator: generating demo data...", flush=True)
            simulator = start_simulator(
                accounts=3000,
                contacts=30000,
                state_dir=STATE_DIR / "sim",
                extra_args=("--demo-churn",),
            )
            stack.callback(simulator.stop)
            for name, value in simulator.env.items():
                if name.startswith("DATAVERSE_"):
                    os.environ[name] = value
            print(f"Dataverse simulator: {simulator.dataverse_url}", flush=True)
        if not os.environ.get("ACCTSYNC_API_KEY"):
            os.environ["ACCTSYNC_API_KEY"] = secrets.token_urlsafe(24)
            print(f"ACCTSYNC_API_KEY={os.environ['ACCTSYNC_API_KEY']}", flush=True)
        return run_local_host()


if __name__ == "__main__":
    Path(STATE_DIR).mkdir(exist_ok=True)
    sys.exit(main())
