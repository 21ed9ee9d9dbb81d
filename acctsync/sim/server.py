"""Run several uvicorn servers side by side in one event loop, on sockets bound beforehand.

uvicorn.Server.serve() would install its own signal handlers for each server; driving
startup/main_loop/shutdown directly lets the simulator own Ctrl-C and SIGTERM and stop all
listeners together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn

from acctsync.ports import free_port
from acctsync.sim.http import ASGIApp
from acctsync.sim.tls import TlsFiles

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


def bind(port: int | None, *, attempts: int = 5) -> socket.socket:
    """A listening-ready socket on 127.0.0.1: the given port, or a free one."""
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, chosen))
        except OSError:
            sock.close()
            # A free port can be taken between free_port() and bind(); pick another.
            if port is not None or attempt == attempts - 1:
                raise
            continue
        sock.set_inheritable(False)
        return sock
    raise AssertionError("unreachable")


@dataclass
class Listener:
    name: str
    app: ASGIApp
    sock: socket.socket
    tls: TlsFiles | None

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(listeners: list[Listener]) -> AsyncIterator[None]:
    """Serve every listener until the block exits, then shut them all down."""
    started: list[tuple[uvicorn.Server, Listener]] = []
    loops: list[asyncio.Task[None]] = []
    try:
        for listener in listeners:
            config = uvicorn.Config(
                listener.app,
                http="h11",
                ws="none",
                lifespan="off",
                log_config=None,
                log_level="warning",
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=2,
                # uvicorn's default of 5 s closes idle connections so soon that a client
                # reusing one can race the close; Azure's front ends keep them for minutes.
                timeout_keep_alive=120,
                ssl_certfile=str(listener.tls.cert_file) if listener.tls else None,
                ssl_keyfile=str(listener.tls.key_file) if listener.tls else None,
            )
            config.load()
            server = uvicorn.Server(config)
            server.lifespan = config.lifespan_class(config)
            await server.startup(sockets=[listener.sock])
            started.append((server, listener))
            # main_loop keeps the Date header fresh and ends once should_exit is set.
            loops.append(asyncio.create_task(server.main_loop()))
            log.info("%s listening on %s:%d", listener.name, HOST, listener.port)
        yield
    finally:
        for server, _ in started:
            server.should_exit = True
            # Do not wait for idle keep-alive TLS connections to finish their close handshake:
            # the clients are usually test processes that never read again.
            server.force_exit = True
        await asyncio.gather(*loops, return_exceptions=True)
        await asyncio.gather(
            *(server.shutdown(sockets=[listener.sock]) for server, listener in started),
            return_exceptions=True,
        )
