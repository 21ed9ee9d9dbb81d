"""`acctsync`: the command line (dev and operations); see `acctsync --help`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from azure.core.exceptions import AzureError

from shared.dataverse.client import DataverseError
from shared.settings import SettingsError, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="acctsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("cycle", help="run one whole cycle now and apply every batch")
    commands.add_parser("run", help="the local host: heartbeat, queue worker and API")
    commands.add_parser("status", help="sync status as JSON")
    commands.add_parser("replay-poison", help="move poison messages back onto the batch queue")
    worker = commands.add_parser(
        "worker", help="(dev) apply queued batches until stopped, like the queue trigger"
    )
    worker.add_argument(
        "--visibility-timeout",
        type=int,
        help="seconds a failed batch waits before its retry (default: host.json)",
    )
    fields = commands.add_parser("fields", help="list or select the account fields to sync")
    field_commands = fields.add_subparsers(dest="fields_command", required=True)
    field_commands.add_parser("list", help="every account column as JSON")
    select = field_commands.add_parser("select", help="store the selection")
    select.add_argument("names", help="NAME[,NAME...]")
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
        if args.command == "fields":
            return _fields(args.fields_command, getattr(args, "names", ""))
        if args.command == "worker":
            from acctsync.worker import serve_until_stopped

            return serve_until_stopped(visibility_timeout_s=args.visibility_timeout)
        if args.command == "replay-poison":
            from shared.services import get_services
            from shared.sync.status import replay_poison

            print(json.dumps({"replayed": replay_poison(get_services())}))
            return 0
        if args.command == "status":
            from shared.services import get_services
            from shared.sync.status import sync_status

            print(json.dumps(sync_status(get_services()), indent=2))
            return 0
    except SettingsError as error:
        print(f"acctsync: configuration error: {error}", file=sys.stderr)
        return 2
    except DataverseError as error:
        # Refused credentials, an untrusted certificate, Dataverse down after every retry:
        # the message says what happened and what to check; a traceback would not help.
        print(f"acctsync: Dynamics 365 (Dataverse): {error}", file=sys.stderr)
        return 1
    except AzureError as error:
        print(
            f"acctsync: storage ({type(error).__name__}): {_first_line(error)} "
            "Check that Azurite or the storage account in AzureWebJobsStorage is reachable; "
            "the next cycle re-reads whatever this one did not finish.",
            file=sys.stderr,
        )
        return 1
    return 1


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else "").rstrip(".") + "."


def _fields(command: str, names: str) -> int:
    from shared.services import get_services
    from shared.sync.fields import FieldSelectionError, list_fields, select_fields

    services = get_services()
    if command == "list":
        print(json.dumps(list_fields(services)))
        return 0
    try:
        selection = select_fields(services, names.split(","))
    except FieldSelectionError as error:
        print(f"acctsync: nothing changed: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"selected": list(selection.columns), "backfill": selection.backfill}))
    return 0


def _cycle() -> int:
    from acctsync.progress import TerminalProgress
    from acctsync.runner import CycleFailed, CycleTimeout, run_cycle_now
    from shared.services import get_services

    get_settings().require_dataverse()  # fail before touching storage or the lease
    try:
        summary = run_cycle_now(get_services(), progress=TerminalProgress())
    except CycleTimeout as error:
        print(f"acctsync: {error}", file=sys.stderr)
        return 1
    except CycleFailed as failed:
        print(f"acctsync: {failed}", file=sys.stderr)
        print(json.dumps(failed.summary))
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
