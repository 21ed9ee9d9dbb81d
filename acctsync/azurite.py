"""Start and stop Azurite from the project's own npm dependency.

Azurite always runs with --disableTelemetry, on 127.0.0.1, on the ports given (free ones by
default), in memory unless a location is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from acctsync.ports import free_port, wait_for_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT = "devstoreaccount1"
# How long Azurite keeps an idle connection open (its default is 5 s); kept below Node's 60 s
# headers timeout.
KEEP_ALIVE_S = 30
# The well-known development account key that every Azurite install accepts; not a secret.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class Azurite:
    """A running Azurite process."""

    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Azurite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_azurite(
    *,
    blob_port: int | None = None,
    queue_port: int | None = None,
    table_port: int | None = None,
    location: Path | None = None,
    log_file: Path | None = None,
    on_spawn: Callable[[int], None] | None = None,
    max_heap_mb: int | None = None,
) -> Azurite:
    """Start Azurite on explicit ports and wait until every service accepts connections;
    `on_spawn` gets its pid as soon as it exists (`make run` records it at once, so that even
    a `make run` killed while Azurite starts leaves nothing the next one does not know).
    `max_heap_mb`: Node's heap limit (about 4 GiB by default), for a mirror of millions of
    entities held in memory."""
    if not AZURITE_BIN.exists():
        node = shutil.which("npm")
        hint = "run `npm ci` in the project folder" if node else "install Node.js, then `npm ci`"
        raise RuntimeError(f"Azurite is not installed at {AZURITE_BIN}: {hint}")
    ports = {
        "blob": blob_port or free_port(),
        "queue": queue_port or free_port(),
        "table": table_port or free_port(),
    }
    args = [str(AZURITE_BIN), "--disableTelemetry", "--silent", "--skipApiVersionCheck"]
    for service, port in ports.items():
        args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
        # Azurite closes a connection idle for 5 s; a client that reuses it at that instant
        # gets "Connection reset by peer", and a transaction (a POST) is not resent: its whole
        # batch is applied again. Kept open longer, fewer pooled connections meet that race.
        args += [f"--{service}KeepAliveTimeout", str(KEEP_ALIVE_S)]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    # A session of its own: Ctrl-C reaches the host, which stops Azurite after it has given
    # back its queue messages, not before.
    env = dict(os.environ)
    if max_heap_mb is not None:
        heap = f"--max-old-space-size={max_heap_mb}"
        env["NODE_OPTIONS"] = " ".join(filter(None, [env.get("NODE_OPTIONS"), heap]))
    process = subprocess.Popen(
        args,
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
    )
    azurite = Azurite(process, ports["blob"], ports["queue"], ports["table"])
    try:
        if on_spawn is not None:
            on_spawn(process.pid)
        for port in ports.values():
            wait_for_port(port)
    except BaseException:  # a timeout, or Ctrl-C while it starts: it has a session of its own
        azurite.stop()
        raise
    return azurite
