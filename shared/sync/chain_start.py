"""Where a table's reading starts in a heartbeat: a pure decision over what is stored.

A table is read from where its chain stands: the checkpoint of a chain under way (when it
reads the same columns and loads at least the columns to backfill), else the stored delta link
(when nothing is to be backfilled), else from the start: a first load when nothing was ever
stored, or a re-load of a table already mirrored, one generation past the newest one known.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.state.cursors import Cursor
from shared.state.schedule import Checkpoint, LoadMode


@dataclass(frozen=True)
class Chain:
    """Where a table's reading starts in this heartbeat, and how far it got before."""

    mode: LoadMode
    link: str | None
    resume: bool  # the link is a checkpoint's next page, not a delta link
    generation: int
    backfill: tuple[str, ...] = ()
    rows_read: int = 0
    pages: int = 0
    total: int | None = None
    unapplied: str = ""  # Checkpoint.unapplied: why the chain must not sweep
    read_from: str | None = None  # when the chain's first page was asked for

    @classmethod
    def resumed(cls, checkpoint: Checkpoint) -> Chain:
        return cls(
            checkpoint.mode,
            checkpoint.next_link,
            True,
            checkpoint.generation,
            checkpoint.backfill,
            checkpoint.rows_read,
            checkpoint.pages,
            checkpoint.total,
            checkpoint.unapplied,
            checkpoint.read_from,
        )

    def checkpoint(self, select: str, next_link: str, *, rows_read: int, pages: int) -> Checkpoint:
        """Where the chain stands once `pages` pages of it are read and sent."""
        return Checkpoint(
            self.mode,
            select,
            next_link,
            self.generation,
            self.backfill,
            rows_read,
            pages,
            self.total,
            self.unapplied,
            self.read_from,
        )


def chain_start(
    checkpoint: Checkpoint | None,
    cursor: Cursor | None,
    *,
    select: str,
    backfill: tuple[str, ...],
) -> Chain:
    """Where reading a table starts, from its checkpoint and cursor, for the columns `select`
    (comma-separated, as stored) of which `backfill` are newly selected."""
    if (
        checkpoint is not None
        and checkpoint.select == select
        and set(backfill) <= set(checkpoint.backfill)
    ):
        return Chain.resumed(checkpoint)
    # A cursor without a link (`acctsync reset-cursors`) asks for a full re-read.
    if cursor is not None and cursor.delta_link and cursor.select == select and not backfill:
        return Chain(LoadMode.DELTA, cursor.delta_link, False, cursor.generation)
    if cursor is None and checkpoint is None:
        return Chain(LoadMode.INITIAL, None, False, 0, backfill)
    previous = max(cursor.generation if cursor else 0, checkpoint.generation if checkpoint else 0)
    return Chain(LoadMode.RELOAD, None, False, previous + 1, backfill)


def chain_after_refusal(chain: Chain, cursor: Cursor | None, backfill: tuple[str, ...]) -> Chain:
    """When Dataverse refuses the chain's link: the whole table read again, as a re-load one
    generation past the newest known (no activity for values that did not change)."""
    previous = max(chain.generation, cursor.generation if cursor else 0)
    return Chain(LoadMode.RELOAD, None, False, previous + 1, backfill)
