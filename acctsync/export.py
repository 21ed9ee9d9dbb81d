"""`acctsync export accounts|contacts|activities`: the mirror streamed out as CSV or NDJSON.

Rows are what the API's lists and activity feed answer, walked with the same pages (1,000 at
a time), so memory stays flat whatever the size of the mirror. A file is written under a
temporary name beside it and renamed when complete: a failed export leaves no half file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shared.csvcells import text_cell
from shared.dataverse.columns import CONTACT_COLUMNS, DEFAULT_ACCOUNT_COLUMNS
from shared.mirror.activities import feed_activities_json
from shared.mirror.activity_feed import activities_since
from shared.mirror.feed_index import Stream
from shared.mirror.record_walks import account_fields, account_item, contact_item, walk_records
from shared.services import Services

ACTIVITY_COLUMNS = ("contactid", "accountid", "type", "field", "old", "new", "reason", "source",
                    "at", "old_truncated", "new_truncated")  # fmt: skip


class ExportTargetError(ValueError):
    """An --output the export cannot write to; nothing was read or written."""


class Kind(StrEnum):
    ACCOUNTS = "accounts"
    CONTACTS = "contacts"
    ACTIVITIES = "activities"


class Format(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"


@dataclass(frozen=True)
class Export:
    kind: Kind
    format: Format
    since: datetime | None = None
    include_deleted: bool = False

    def items(self, services: Services) -> Iterator[dict[str, Any]]:
        since_ms = int(self.since.timestamp() * 1000) if self.since else None
        if self.kind is Kind.ACTIVITIES:
            yield from feed_activities_json(activities_since(services.feed, since_ms or 0))
            return
        accounts = self.kind is Kind.ACCOUNTS
        rows = walk_records(
            services.feed,
            services.initial_loads,
            Stream.SYNCED_ACCOUNTS if accounts else Stream.SYNCED_CONTACTS,
            services.accounts if accounts else services.contacts,
            since_ms=since_ms,
            include_deleted=self.include_deleted,
        )
        if accounts:
            fields = account_fields(services.fields.get())
            yield from (account_item(row, fields) for row in rows)
        else:
            yield from (contact_item(row) for row in rows)

    def check_range(self, services: Services) -> None:
        """RangeGone when `since` is before the oldest time the synced index holds whole (the
        activity feed starts at its oldest entry kept, as the API's does)."""
        if self.since is not None and self.kind is not Kind.ACTIVITIES:
            services.feed.require_kept(int(self.since.timestamp() * 1000))

    def columns(self, services: Services) -> list[str]:
        """The CSV header: the item's own keys, then its fields (the selected account columns,
        or the contact columns)."""
        if self.kind is Kind.ACTIVITIES:
            return list(ACTIVITY_COLUMNS)
        if self.kind is Kind.ACCOUNTS:
            selection = services.fields.get()
            own = ["accountid", "is_deleted", "locally_modified", "synced_at"]
            # Before any selection is stored, a cycle syncs the default columns.
            return own + list(selection.columns if selection else DEFAULT_ACCOUNT_COLUMNS)
        return ["contactid", "accountid", "is_deleted", "synced_at", *CONTACT_COLUMNS]


def run_export(services: Services, export: Export, output: Path | None) -> int:
    """Write the export to `output` (stdout when None); returns the number of rows. RangeGone,
    before anything is written, for a `since` the retention has passed."""
    export.check_range(services)
    console = Console(file=sys.stderr)
    started = time.monotonic()
    with (
        _target(output) as stream,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}: {task.completed:,} rows"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as progress,
    ):
        task = progress.add_task(f"exporting {export.kind.value}", total=None, rate="")
        count = 0
        for line, record in _lines(services, export):
            stream.write(line)
            count += record  # the CSV header is a line, not a record
            if record and count % 1000 == 0:
                rate = count / max(time.monotonic() - started, 1e-6)
                progress.update(task, completed=count, rate=f"{rate:,.0f}/s")
        progress.update(task, completed=count)
    elapsed = time.monotonic() - started
    where = str(output) if output else "stdout"
    print(f"exported {count:,} {export.kind.value} to {where} in {elapsed:,.1f} s", file=sys.stderr)
    return count


def _lines(services: Services, export: Export) -> Iterator[tuple[bytes, int]]:
    """Each line to write, with how many records it holds (1, or 0 for the CSV header)."""
    if export.format is Format.NDJSON:
        for item in export.items(services):
            yield orjson.dumps(item) + b"\n", 1
        return
    columns = export.columns(services)
    buffer = io.StringIO()
    # CRLF, as RFC 4180: the writer then also quotes a cell holding a lone CR, which would
    # otherwise end the row in a spreadsheet and start a row of the cell's choosing.
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: list[str]) -> bytes:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    yield line(columns), 0
    for item in export.items(services):
        flat = {**item.get("fields", {}), **{k: v for k, v in item.items() if k != "fields"}}
        yield line([_cell(flat.get(column)) for column in columns]), 1


def _cell(value: Any) -> str:
    """A CSV cell: text as it is (behind a quote where a spreadsheet would run it as a
    formula), nothing as empty, anything else as JSON (true, 12.5, [..])."""
    if value is None:
        return ""
    if isinstance(value, str):
        return text_cell(value)
    return orjson.dumps(value).decode()


def checked_output(output: Path) -> Path:
    """The absolute path to export to, or ExportTargetError saying what to name instead;
    checked before anything is read, so a typo costs no walk of the mirror."""
    output = output.resolve()
    if output.is_dir():
        raise ExportTargetError(f"{output} is a folder; name a file in it, e.g. {output}/export")
    if not output.parent.is_dir():
        raise ExportTargetError(
            f"the folder {output.parent} does not exist; create it or name a file in a folder "
            "that does"
        )
    return output


@contextlib.contextmanager
def _target(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    output = checked_output(output)
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed below)
            "wb", dir=output.parent, prefix=f".{output.name}.", suffix=".partial", delete=False
        )
    except OSError as error:
        raise ExportTargetError(
            f"cannot write in {output.parent} ({error.strerror}); name a file in a folder you "
            "can write to"
        ) from None
    try:
        with handle:
            yield handle
        os.replace(handle.name, output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise
