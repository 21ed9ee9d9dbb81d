"""The one loop that writes a row under its ETag again while others change it."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from shared.errors import AcctsyncError
from shared.mirror.conflicts import ConflictRetries, WriteConflict, write_on_top

RETRIES = ConflictRetries(3, "row 1 kept changing; retry later")


def test_a_conflict_reads_the_row_again_and_writes_on_top_of_it() -> None:
    rows = iter(["second read"])
    written: list[str] = []

    def write(row: str) -> str:
        written.append(row)
        if row == "first read":
            raise ResourceModifiedError("someone wrote it meanwhile")
        return f"over {row}"

    result = write_on_top("first read", write, reread=lambda: next(rows), retries=RETRIES)
    assert result == "over second read"
    assert written == ["first read", "second read"]


def test_it_gives_up_with_one_error_that_says_what_to_do() -> None:
    conflicts: list[int] = []

    def write(row: int) -> None:
        raise ResourceExistsError("created meanwhile")

    with pytest.raises(WriteConflict, match="retry later") as raised:
        write_on_top(0, write, reread=lambda: 1, retries=RETRIES, on_conflict=conflicts.append)
    assert isinstance(raised.value, AcctsyncError) and isinstance(raised.value, RuntimeError)
    assert conflicts == [0, 1, 1]


def test_on_conflict_may_refuse_to_go_on() -> None:
    class Refused(Exception):
        pass

    def write(row: int) -> None:
        raise ResourceModifiedError("changed")

    def refuse(row: int) -> None:
        raise Refused

    with pytest.raises(Refused):
        write_on_top(0, write, reread=lambda: 1, retries=RETRIES, on_conflict=refuse)
