"""Writing a row under the ETag it was read with, again while others change it.

The apply step, the re-sync and a local edit all read an account row, work out the row they
want from it and replace it only if nobody wrote it meanwhile. When somebody did, the row is
read again and the work done again on top of what is there now: no write is silently lost.
`write_on_top` is that loop; `WriteConflict` is how it gives up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

from shared.errors import AcctsyncError

Row = TypeVar("Row")
Written = TypeVar("Written")


class WriteConflict(AcctsyncError, RuntimeError):
    """A row kept changing under a conditional write however often it was read again; the
    last attempt wrote nothing. The message says what to retry."""


@dataclass(frozen=True)
class ConflictRetries:
    """How often a write is tried again after a conflict, and what to say when it gives up."""

    attempts: int
    gives_up: str  # WriteConflict's message: what kept changing and what to do
    # Each retry waits up to min(cap, 10 ms * 2**attempt), at random; 0: retries at once.
    backoff_cap_s: float = 0.0

    def wait(self, attempt: int) -> None:
        if self.backoff_cap_s:
            time.sleep(random.uniform(0, min(self.backoff_cap_s, 0.01 * 2**attempt)))


def write_on_top(
    first: Row,
    write: Callable[[Row], Written],
    *,
    reread: Callable[[], Row],
    retries: ConflictRetries,
    on_conflict: Callable[[Row], None] = lambda row: None,
) -> Written:
    """`write(row)` from the row read first, and after each conflict (`write` raised
    ResourceModifiedError, or ResourceExistsError creating a row that came meanwhile) from the
    row read again; `on_conflict(row)` may refuse to go on by raising. WriteConflict after
    `retries.attempts` conflicts."""
    row = first
    for attempt in range(retries.attempts):
        if attempt:
            retries.wait(attempt)
            row = reread()
        try:
            return write(row)
        except (ResourceModifiedError, ResourceExistsError):
            on_conflict(row)
    raise WriteConflict(retries.gives_up)
