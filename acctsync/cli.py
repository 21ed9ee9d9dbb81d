"""`acctsync`: the command line (dev and operations); see `acctsync --help`.

Settings come from the environment, then the `Values` of ./local.settings.json, then those of
the dev stack `make run` keeps in .acctsync/ (acctsync/localsettings.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from acctsync.localsettings import LocalSettingsError, load_local_settings
from shared.dataverse.client import DataverseError
from shared.settings import SettingsError, get_settings

if TYPE_CHECKING:
    from shared.state.audit_trail import Actor

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acctsync", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("cycle", help="run one whole cycle now and apply every batch")
    run = commands.add_parser("run", help="the local host: heartbeat, queue worker and API")
    run.add_argument("--verbose", action="store_true", help="debug logs, with tracebacks")
    commands.add_parser("status", help="sync status as JSON")
    commands.add_parser("replay-poison", help="move poison messages back onto the batch queue")
    commands.add_parser(
        "reset-cursors",
        help="forget every table's delta link: the next cycle reads them again in full",
    )
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
    select = field_commands.add_parser(
        "select",
        help="replace the selection with these columns (stderr says what it added and removed)",
        description="Replace the selection: the columns named are selected and every other "
        "column stops syncing (its mirrored values are kept). Columns added, or selected again, "
        "are loaded for every account by the next cycle in one re-read, logging no activities. "
        "stderr says what was added and removed; `fields add` / `fields remove` change only the "
        "columns they name.",
    )
    select.add_argument("names", help="NAME[,NAME...]: the whole selection")
    add = field_commands.add_parser(
        "add", help="select these columns as well, leaving the others as they are"
    )
    add.add_argument("names", help="NAME[,NAME...]")
    remove = field_commands.add_parser(
        "remove", help="stop syncing these columns (values kept), leaving the others as they are"
    )
    remove.add_argument("names", help="NAME[,NAME...]")
    validate = commands.add_parser(
        "validate", help="check the set-up: one row per check, each with its fix"
    )
    validate.add_argument("--json", action="store_true", help="one JSON array on stdout")
    pause = commands.add_parser(
        "pause", help="stop new cycles and steps (queued batches still apply)"
    )
    pause.add_argument("--reason", default="", help="why, for the audit trail and the status")
    commands.add_parser("resume", help="let cycles start again, from the stored delta links")
    resync = commands.add_parser(
        "resync",
        help="re-sync one selected account column for every account, or those created or "
        "modified in a range: nulls included, over local edits, logging no activity",
    )
    resync.add_argument("field", help="the selected account column, by logical name")
    resync.add_argument("--modified-since", metavar="ISO", help="e.g. 2026-01-01T00:00:00Z")
    resync.add_argument("--modified-until", metavar="ISO", help="e.g. 2026-01-31T23:59:59Z")
    retry = commands.add_parser(
        "retry-errors",
        help="read the records named in Sync Errors again from Dynamics and apply them; "
        "exits 1 while one still fails",
    )
    retry.add_argument("--code", help="only errors with this code, e.g. unstorable_value")
    retry.add_argument(
        "--id", action="append", dest="ids", metavar="ID", help="only this record id (repeatable)"
    )
    verify = commands.add_parser(
        "verify",
        help="compare the mirror with Dynamics, table by table (exit 1 when drift is left)",
    )
    verify.add_argument(
        "--repair", action="store_true", help="re-read the drifted records and apply them"
    )
    verify.add_argument(
        "--deep", action="store_true", help="also compare the selected columns' values"
    )
    verify.add_argument(
        "--json", action="store_true", help="only the JSON result, no summary on stderr"
    )
    commands.add_parser("sim", help="start the Dataverse simulator", add_help=False)
    export = commands.add_parser(
        "export", help="stream accounts, contacts or activities out as CSV or NDJSON"
    )
    export.add_argument("what", choices=["accounts", "contacts", "activities"])
    export.add_argument(
        "--since",
        help="ISO-8601 time: records synced, or activities logged, at or after it",
    )
    export.add_argument("--format", choices=["csv", "ndjson"], default="ndjson")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    export.add_argument(
        "--include-deleted", action="store_true", help="also records deleted in Dynamics"
    )
    audit = commands.add_parser(
        "audit", help="the audit trail of admin actions and sign-ins as NDJSON, newest first"
    )
    audit.add_argument("--since", metavar="ISO", help="only entries at or after this time")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "sim":
            from acctsync.sim.cli import main as sim_main

            return int(sim_main(list(rest)))
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        configure_logging(verbose=getattr(args, "verbose", False))
        load_local_settings()
        return COMMANDS[args.command](args)
    except ModuleNotFoundError as missing:
        # Azure's requirements.txt leaves out what only the CLI needs (uvicorn, rich, ...).
        package = (missing.name or "").split(".")[0]
        print(
            f"acctsync {args.command}: the Python package {package!r} is missing: install it "
            f"(pip install {package}), or acctsync with all it needs (pip install -e .)",
            file=sys.stderr,
        )
        return 2
    except _BadOption as error:
        print(f"acctsync: {error}", file=sys.stderr)
        return 2
    except (SettingsError, LocalSettingsError) as error:
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


class _OneLine(logging.Formatter):
    """Log lines without tracebacks (they are for --verbose)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:
            record = logging.makeLogRecord(record.__dict__)
            record.msg = f"{record.getMessage()} (--verbose shows the traceback)"
            record.args = None
            record.exc_info = record.exc_text = None
        return super().format(record)


def configure_logging(*, verbose: bool) -> None:
    handler = logging.StreamHandler()
    style = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(style) if verbose else _OneLine(style))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    if verbose:
        for name in ("shared", "functions", "acctsync"):
            logging.getLogger(name).setLevel(logging.DEBUG)


class _BadOption(ValueError):
    """An option's value that cannot be used; the message says what to write instead."""


def _since(text: str | None) -> datetime | None:
    from shared.times import parse_iso

    try:
        return parse_iso(text) if text else None
    except (ValueError, OverflowError):
        raise _BadOption(
            f"--since {text!r} is not an ISO-8601 time; use e.g. 2026-12-01T00:00:00Z"
        ) from None


def _me() -> Actor:
    """Who acts from this command line, for the audit trail."""
    from shared.state.audit_trail import Actor

    return Actor.cli()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else "").rstrip(".") + "."


def _print(value: object, *, indent: int | None = None) -> int:
    print(json.dumps(value, indent=indent))
    return 0


def _cycle(args: argparse.Namespace) -> int:
    from acctsync.progress import TerminalProgress
    from acctsync.runner import CycleFailed, CycleTimeout, SyncPaused, run_cycle_now
    from shared.services import get_services

    get_settings().require_dataverse()  # fail before touching storage or the lease
    try:
        summary = run_cycle_now(get_services(), progress=TerminalProgress())
    except (CycleTimeout, SyncPaused) as error:
        print(f"acctsync: {error}", file=sys.stderr)
        return 1
    except CycleFailed as failed:
        print(f"acctsync: {failed}", file=sys.stderr)
        _print(failed.summary.to_json())
        return 1
    return _print(summary.to_json())


def _verify(args: argparse.Namespace) -> int:
    from acctsync.runner import CycleTimeout, SyncPaused, run_verify_now
    from shared.services import get_services

    get_settings().require_dataverse()  # fail before touching storage or the lease
    try:
        result = run_verify_now(get_services(), repair=args.repair, deep=args.deep)
    except (CycleTimeout, SyncPaused) as error:
        print(f"acctsync: {error}", file=sys.stderr)
        return 1
    body = result.to_json()
    if not args.json:
        print(_verify_summary(body), file=sys.stderr)
    _print(body)
    return 0 if result.drift_left == 0 and result.error is None else 1


def _verify_summary(body: dict[str, Any]) -> str:
    """What a person reads first: what was compared, what differed, what is left."""
    checked = ", ".join(f"{n:,} {t}" for t, n in body["checked"].items())
    if body["error"]:
        return f"acctsync: verify failed: {body['error']}"
    kinds = ", ".join(f"{n:,} {k}" for k, n in body["by_kind"].items() if n) or "none"
    lines = [
        f"acctsync: verified {checked} in {body['duration_s']:.1f}s "
        f"({body['dataverse_requests']:,} Dataverse requests; {body['pending']:,} pending)",
        f"acctsync: drift: {body['drift']:,} ({kinds})",
    ]
    if body["repair"]:
        lines.append(f"acctsync: repaired {body['repaired']:,}; left {body['drift_left']:,}")
    elif body["drift"]:
        lines.append("acctsync: `acctsync verify --repair` re-reads and applies them")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from acctsync.localhost import run_local_host

    return run_local_host()


def _status(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.status import sync_status

    return _print(sync_status(get_services()).to_json(), indent=2)


def _replay_poison(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.status import replay_poison

    return _print({"replayed": replay_poison(get_services(), actor=_me())})


def _reset_cursors(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.reset_cursors import CycleRunning, reset_cursors

    try:
        reset = reset_cursors(get_services(), actor=_me())
    except CycleRunning as error:
        print(f"acctsync: nothing changed: {error}", file=sys.stderr)
        return 1
    return _print({"reset": reset})


def _validate(args: argparse.Namespace) -> int:
    from shared.settings import Settings
    from shared.setup.report import CheckStatus
    from shared.setup.validate import validate

    results = validate(Settings.from_env)
    if args.json:
        _print([r.to_json() for r in results])
    else:
        width = max(len(r.check) for r in results)
        for result in results:
            print(f"{result.status.value.upper():4}  {result.check:{width}}  {result.detail}")
            if result.fix and result.status is not CheckStatus.PASS:
                print(f"{'':4}  {'':{width}}  fix: {result.fix}")
    return 1 if any(r.status is CheckStatus.FAIL for r in results) else 0


def _pause(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.pause_resume import BadPauseReason, pause_sync

    try:
        return _print(pause_sync(get_services(), actor=_me(), reason=args.reason))
    except BadPauseReason as error:
        print(f"acctsync pause: --reason: {error}; nothing changed", file=sys.stderr)
        return 2


def _resume(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.pause_resume import resume_sync

    return _print(resume_sync(get_services(), actor=_me()))


def _worker(args: argparse.Namespace) -> int:
    from acctsync.worker import serve_until_stopped

    return serve_until_stopped(visibility_timeout_s=args.visibility_timeout)


def _export(args: argparse.Namespace) -> int:
    from acctsync.export import Export, ExportTargetError, Format, Kind, checked_output, run_export
    from shared.mirror.feed_index import RangeGone
    from shared.mirror.record_walks import range_gone
    from shared.services import get_services

    since = _since(args.since)
    export = Export(Kind(args.what), Format(args.format), since, args.include_deleted)
    try:
        # Before anything is read: a wrong path is said at once, and no file is left.
        output = checked_output(args.output) if args.output else None
    except ExportTargetError as error:
        print(f"acctsync: nothing exported: --output {args.output}: {error}", file=sys.stderr)
        return 2
    services = get_services()
    try:
        run_export(services, export, output)
    except RangeGone as gone:
        retention = range_gone(gone, services.settings.feed_retention_days)
        print(
            f"acctsync: --since {args.since}: {retention}. For a full copy, export "
            f"{args.what} without --since; then export with --since from when that one started.",
            file=sys.stderr,
        )
        return 2
    except OSError as error:  # no room, no right to write there: nothing was left behind
        print(f"acctsync: could not write {output}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def _fields(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.select_fields import (
        FieldResyncPending,
        FieldSelectionError,
        edit_fields,
        list_fields,
        select_fields,
    )

    services = get_services()
    if args.fields_command == "list":
        return _print(list_fields(services))
    names = args.names.split(",")
    try:
        if args.fields_command == "select":
            change = select_fields(services, names, actor=_me())
        elif args.fields_command == "add":
            change = edit_fields(services, actor=_me(), add=names)
        else:
            change = edit_fields(services, actor=_me(), remove=names)
    except (FieldSelectionError, FieldResyncPending) as error:
        print(f"acctsync: nothing changed: {error}", file=sys.stderr)
        return 1
    print(f"acctsync: {change.describe()}", file=sys.stderr)
    return _print(change.to_json())


def _resync(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.resync_requests import ResyncError, request_resync

    try:
        requested = request_resync(
            get_services(),
            args.field,
            modified_since=args.modified_since,
            modified_until=args.modified_until,
            actor=_me(),
        )
    except ResyncError as error:
        print(f"acctsync: nothing queued: {error}", file=sys.stderr)
        return 1
    print(
        "acctsync: queued; the next cycles re-sync it (`acctsync cycle` runs one now, "
        "`acctsync status` shows its progress under resyncs)",
        file=sys.stderr,
    )
    return _print(requested.to_json())


def _retry_errors(args: argparse.Namespace) -> int:
    from shared.services import get_services
    from shared.sync.retry import UnknownErrorCode, retry_errors

    get_settings().require_dataverse()
    try:
        outcome = retry_errors(get_services(), actor=_me(), code=args.code, ids=args.ids)
    except UnknownErrorCode as error:
        print(f"acctsync: nothing retried: {error}", file=sys.stderr)
        return 2
    for record in outcome.retried:
        state = "resolved" if record.resolved else f"still failing: {record.message}"
        print(f"{record.entity} {record.id}: {state}")
    for skipped in outcome.skipped:
        print(f"skipped {skipped.entity or 'id'} {skipped.id}: {skipped.reason}")
    counts = {k: v for k, v in outcome.to_json().items() if isinstance(v, int)}
    _print(counts)
    return 1 if counts["still_failing"] else 0


def _audit(args: argparse.Namespace) -> int:
    from shared.services import get_services

    since = _since(args.since)
    for entry in get_services().audit.every(since=since):
        print(json.dumps(entry.to_json()), flush=False)
    return 0


COMMANDS: dict[str, Command] = {
    "cycle": _cycle,
    "run": _run,
    "status": _status,
    "replay-poison": _replay_poison,
    "reset-cursors": _reset_cursors,
    "worker": _worker,
    "fields": _fields,
    "validate": _validate,
    "pause": _pause,
    "resume": _resume,
    "resync": _resync,
    "export": _export,
    "retry-errors": _retry_errors,
    "verify": _verify,
    "audit": _audit,
}


if __name__ == "__main__":
    sys.exit(main())
