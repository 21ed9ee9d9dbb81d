"""`acctsync`: the command line (dev and operations); see `acctsync --help`."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
from collections.abc import Sequence

from shared.settings import SettingsError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acctsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("cycle", help="run one whole cycle now and apply every batch")
    commands.add_parser("run", help="the local host: heartbeat, queue worker and API")
    commands.add_parser("status", help="sync status as JSON")
    commands.add_parser("sim", help="start the Dataverse simulator", add_help=False)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "sim":
            from acctsync.sim.cli import main as sim_main

            return int(sim_main(list(rest)))
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if args.command == "cycle":
            return _cycle()
        if args.command == "run":
            from acctsync.localhost import run_local_host

            return run_local_host()
        if args.command == "status":
            from shared.services import get_services
            from shared.status import sync_status

            print(json.dumps(sync_status(get_services()), indent=2))
            return 0
    except SettingsError as error:
        print(f"acctsync: configuration error: {error}", file=sys.stderr)
        return 2
    return 1


def _cycle() -> int:
    from acctsync.progress import TerminalProgress
    from acctsync.worker import QueueWorker
    from shared.cycle import heartbeat
    from shared.services import get_services

    services = get_services()
    owner = f"cli-{socket.gethostname()}"
    progress = TerminalProgress()
    worker = QueueWorker(services)
    worker.progress = progress
    started = False
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        outcome = heartbeat(services, owner=owner, force=not started, progress=progress)
        if outcome.action == "planned":
            started = True
            progress.planned(outcome.summary)
        elif outcome.action == "finished" and started:
            progress.done()
            print(json.dumps(outcome.summary))
            return 0
        elif outcome.action == "busy":
            time.sleep(1.0)  # another host holds the lease; wait for its cycle
        worker.drain()
        if outcome.action == "waiting":
            time.sleep(0.5)  # messages in flight elsewhere, or waiting to be retried
    print("acctsync: the cycle did not finish within an hour", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
