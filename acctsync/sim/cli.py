"""Command line of the simulator: `python -m acctsync.sim` and `acctsync sim`.

On start it prints exactly one JSON line on stdout with the settings that point acctsync at
it (DATAVERSE_URL and friends, plus SIM_* values for tests), then explains itself on stderr.
Everything listens on 127.0.0.1 only: the Web API and the authority on HTTPS with a CA made
for this run, the control surface on plain HTTP on a port of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import uuid
from pathlib import Path

from acctsync.sim import demo
from acctsync.sim.auth import Credentials, TokenService, identity_handler, realm_handler
from acctsync.sim.control import Control
from acctsync.sim.http import asgi_app
from acctsync.sim.org import ORG
from acctsync.sim.server import Listener, bind, serving
from acctsync.sim.state import DEFAULT_DELTA_RETENTION_S, Simulation
from acctsync.sim.tls import make_certificates
from acctsync.sim.webapi import WebApi

log = logging.getLogger("acctsync.sim")
TENANT_DOMAIN = "acctsyncsim.onmicrosoft.com"
# msal asks https://<authority host>:443/common/userrealm/... before a password grant.
REALM_PORT = 443


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acctsync sim",
        description="Run a local Dataverse Web API simulator with an Entra ID stand-in.",
    )
    parser.add_argument("--port", type=int, help="Web API port (default: a free port)")
    parser.add_argument("--authority-port", type=int, help="authority port (default: free)")
    parser.add_argument("--control-port", type=int, help="control port (default: free)")
    parser.add_argument(
        "--state-dir", type=Path, help="where the CA and certificates go (default: a temp dir)"
    )
    parser.add_argument("--accounts", type=int, default=3000, help="demo accounts (3000)")
    parser.add_argument("--contacts", type=int, default=30000, help="demo contacts (30000)")
    parser.add_argument("--seed", type=int, default=1, help="demo data seed (1)")
    parser.add_argument(
        "--demo-churn", action="store_true", help="keep changing a few rows every interval"
    )
    parser.add_argument(
        "--churn-interval", type=float, default=60.0, help="seconds between churn rounds (60)"
    )
    parser.add_argument(
        "--token-lifetime", type=float, default=3600.0, help="access token lifetime, s (3600)"
    )
    parser.add_argument(
        "--delta-token-retention",
        type=float,
        default=DEFAULT_DELTA_RETENTION_S,
        help="seconds a delta token stays valid (7 days, the Dataverse default)",
    )
    parser.add_argument("--tenant-id", help="tenant id (default: random)")
    parser.add_argument("--client-id", help="app registration client id (default: random)")
    parser.add_argument("--client-secret", help="client secret (default: random)")
    parser.add_argument("--username", help=f"ROPC user (default: syncuser@{TENANT_DOMAIN})")
    parser.add_argument("--password", help="ROPC password (default: random)")
    parser.add_argument("--control-key", help="x-sim-control-key value (default: random)")
    parser.add_argument(
        "--credentials-file",
        type=Path,
        help="JSON with tenant_id, client_id, client_secret, username, password and "
        "control_key (instead of passing secrets on the command line)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.credentials_file is not None:
        try:
            given = json.loads(args.credentials_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            parser.error(f"--credentials-file {args.credentials_file}: {error}")
        for name in (
            "tenant_id",
            "client_id",
            "client_secret",
            "username",
            "password",
            "control_key",
        ):
            if getattr(args, name) is None and isinstance(given.get(name), str):
                setattr(args, name, given[name])
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


def _credentials(args: argparse.Namespace) -> Credentials:
    return Credentials(
        tenant_id=args.tenant_id or str(uuid.uuid4()),
        tenant_domain=TENANT_DOMAIN,
        client_id=args.client_id or str(uuid.uuid4()),
        client_secret=args.client_secret or f"sim8Q~{secrets.token_urlsafe(30)}",
        username=args.username or f"syncuser@{TENANT_DOMAIN}",
        password=args.password or secrets.token_urlsafe(18),
    )


async def _run(args: argparse.Namespace) -> None:
    own_dir = args.state_dir is None
    state_dir: Path = Path(tempfile.mkdtemp(prefix="acctsync-sim-")) if own_dir else args.state_dir
    try:
        await _serve(args, state_dir)
    finally:
        if own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


async def _serve(args: argparse.Namespace, state_dir: Path) -> None:
    tls = make_certificates(state_dir)
    api_sock = bind(args.port)
    authority_sock = bind(args.authority_port)
    control_sock = bind(args.control_port)
    identity_sock = bind(None)
    realm_sock: socket.socket | None = None
    try:
        # Two simulators on one machine (the test suite's two halves): the second leaves the
        # port to the first, and its tests of password sign-in skip.
        if os.environ.get("ACCTSYNC_SIM_REALM") != "off":
            realm_sock = bind(REALM_PORT)
    except OSError as error:
        log.warning(
            "could not listen on 127.0.0.1:%d (%s): msal's username/password sign-in will "
            "fail unless another simulator answers there",
            REALM_PORT,
            error.strerror,
        )
    base_url = f"https://127.0.0.1:{api_sock.getsockname()[1]}"
    authority = f"https://localhost:{authority_sock.getsockname()[1]}"
    credentials = _credentials(args)
    tokens = TokenService(
        credentials, ORG, resource=base_url, authority=authority, lifetime_s=args.token_lifetime
    )
    sim = Simulation(ORG, tokens, base_url, delta_retention_s=args.delta_token_retention)
    if args.accounts or args.contacts:
        gc.disable()  # collecting while building 200,000 dicts costs more than building them
        try:
            data = demo.generate(
                ORG, accounts=args.accounts, contacts=args.contacts, seed=args.seed
            )
            demo.load(sim.store, data)
        finally:
            gc.enable()
    control_key = args.control_key or secrets.token_urlsafe(24)
    identity_secret = secrets.token_urlsafe(24)
    identity_client_id = str(uuid.uuid5(uuid.UUID(credentials.client_id), "managed-identity"))
    listeners = [
        Listener(
            "Web API", asgi_app(WebApi(sim).handle, log=sim.log, listener="webapi"), api_sock, tls
        ),
        Listener(
            "authority",
            asgi_app(tokens.handle, log=sim.log, listener="authority"),
            authority_sock,
            tls,
        ),
        Listener(
            "control",
            asgi_app(Control(sim, control_key).handle, log=None, listener="control"),
            control_sock,
            None,
        ),
        Listener(
            "managed identity",
            asgi_app(
                identity_handler(tokens, secret=identity_secret, client_id=identity_client_id),
                log=sim.log,
                listener="identity",
            ),
            identity_sock,
            None,
        ),
    ]
    if realm_sock is not None:
        realm = asgi_app(realm_handler(tokens), log=sim.log, listener="userrealm")
        listeners.append(Listener("user realm", realm, realm_sock, tls))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    settings = {
        "DATAVERSE_URL": base_url,
        "DATAVERSE_AUTHORITY_HOST": authority,
        "DATAVERSE_TENANT_ID": credentials.tenant_id,
        "DATAVERSE_CLIENT_ID": credentials.client_id,
        "DATAVERSE_CLIENT_SECRET": credentials.client_secret,
        "DATAVERSE_CA_BUNDLE": str(tls.ca_file),
        "SIM_USERNAME": credentials.username,
        "SIM_PASSWORD": credentials.password,
        "SIM_CONTROL_URL": f"http://127.0.0.1:{control_sock.getsockname()[1]}",
        "SIM_CONTROL_KEY": control_key,
        "SIM_APP_USER_ID": ORG.app_user.id,
        "SIM_SYNC_USER_ID": ORG.sync_user.id,
        "SIM_USERREALM_443": "1" if realm_sock is not None else "0",
        "SIM_STATE_DIR": str(state_dir),
        # The App Service managed identity endpoint, for DATAVERSE_CREDENTIAL=managedidentity:
        # set IDENTITY_ENDPOINT and IDENTITY_HEADER from these, DATAVERSE_CLIENT_ID from the id.
        "SIM_IDENTITY_ENDPOINT": f"http://127.0.0.1:{identity_sock.getsockname()[1]}/msi/token",
        "SIM_IDENTITY_HEADER": identity_secret,
        "SIM_IDENTITY_CLIENT_ID": identity_client_id,
    }
    async with serving(listeners):
        sys.stdout.write(json.dumps(settings) + "\n")
        sys.stdout.flush()
        sys.stderr.write(_explain(settings, sim, args))
        sys.stderr.flush()
        churn = None
        if args.demo_churn:
            runner = demo.Churn(sim.store, ORG, seed=args.seed, interval_s=args.churn_interval)
            churn = asyncio.create_task(runner.run())
        await stop.wait()
        log.info("stopping")
        if churn is not None:
            churn.cancel()


def _explain(settings: dict[str, str], sim: Simulation, args: argparse.Namespace) -> str:
    accounts = len(sim.store.data("account").rows)
    contacts = len(sim.store.data("contact").rows)
    churn = ", churning" if args.demo_churn else ""
    lines = [
        "",
        f"Dataverse simulator ready ({accounts} accounts, {contacts} contacts, "
        f"seed {args.seed}{churn}).",
        f"  Web API    {settings['DATAVERSE_URL']}/api/data/v9.2/ (HTTPS)",
        f"  CA file    {settings['DATAVERSE_CA_BUNDLE']}",
        f"  Entra ID   {settings['DATAVERSE_AUTHORITY_HOST']}/{settings['DATAVERSE_TENANT_ID']}"
        f" (client credentials, or username/password for {settings['SIM_USERNAME']})",
        f"  control    {settings['SIM_CONTROL_URL']}"
        f" (header x-sim-control-key: {settings['SIM_CONTROL_KEY']})",
        "Point acctsync at it with the DATAVERSE_* values of the JSON line on stdout; for the",
        "ROPC sync user also set DATAVERSE_USERNAME/DATAVERSE_PASSWORD from SIM_USERNAME and",
        "SIM_PASSWORD. Ctrl-C stops it.",
        "",
    ]
    return "\n".join(lines)
