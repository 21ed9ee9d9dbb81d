"""Loopback ports for the processes the dev tools start: free ones, and who holds a taken one."""

from __future__ import annotations

import os
import socket
import time

import psutil

API_HOST = "127.0.0.1"  # loopback only: the local host is never reachable from elsewhere
API_PORT = 7071  # the contract's address; another only through ACCTSYNC_API_PORT


class ApiPortError(ValueError):
    """The API's port is malformed or taken; the message says what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bindable(port: int) -> bool:
    """Free to listen on: nothing listening (a port in TIME-WAIT counts as free, as it is for
    a listener with address reuse, which Azurite, the simulator and uvicorn all use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def next_bindable(port: int) -> int:
    """The first port above `port` that is free to listen on (a free one if none is near)."""
    return next((p for p in range(port + 1, port + 20) if bindable(p)), None) or free_port()


def listener(port: int) -> str:
    """Who listens on `port`, for a message: its pid and program name when this user may see
    them (a program of another user, or in another container, stays "another program"). Not
    its command line, which may carry that program's secrets."""
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if (
                connection.status == psutil.CONN_LISTEN
                and connection.laddr
                and connection.laddr.port == port
                and connection.pid
            ):
                name = psutil.Process(connection.pid).name()
                return f"another program ({name}, pid {connection.pid})"
    except psutil.Error:
        pass
    return "another program"


def port_taken(port: int, use: str) -> str:
    """A port another program holds, for a message: which, for what, and who holds it."""
    return f"port {port} ({use}) is taken by {listener(port)}"


def api_port() -> int:
    """The local host's API port: ACCTSYNC_API_PORT, else 7071, and free to listen on. It never
    moves by itself: users and their scripts know the address."""
    text = os.environ.get("ACCTSYNC_API_PORT") or str(API_PORT)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ApiPortError(
            f"ACCTSYNC_API_PORT={text!r} is not a port number: set it to a free port, such "
            f"as {next_bindable(API_PORT)}, or unset it for {API_PORT}"
        )
    port = int(text)
    if not bindable(port):
        raise ApiPortError(
            f"{port_taken(port, 'the API and admin console')}: stop it, or choose another "
            f"port with ACCTSYNC_API_PORT (`ACCTSYNC_API_PORT={next_bindable(port)} make run`)"
        )
    return port


def wait_for_port(port: int, *, timeout: float = 30.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout}s"
                ) from None
            time.sleep(0.05)
