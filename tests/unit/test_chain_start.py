"""Where a table's reading starts in a heartbeat (shared/sync/chain_start.py): the checkpoint
of a chain under way, the stored delta link, or from the start, and which generation."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.state.cursors import Cursor
from shared.state.schedule import Checkpoint, LoadMode
from shared.sync.chain_start import Chain, chain_after_refusal, chain_start

SELECT = "accountid,name"
AT = datetime(2026, 12, 1, tzinfo=UTC)


def cursor(*, link: str = "delta-1", select: str = SELECT, generation: int = 2) -> Cursor:
    return Cursor("accounts", link, select, AT, generation)


def checkpoint(
    *, select: str = SELECT, backfill: tuple[str, ...] = (), generation: int = 3
) -> Checkpoint:
    return Checkpoint(
        LoadMode.RELOAD,
        select,
        "next-page",
        generation,
        backfill,
        rows_read=500,
        pages=5,
        total=2000,
        unapplied="",
        read_from="2026-12-01T00:00:00.000000Z",
    )


def test_nothing_stored_is_a_first_load_of_generation_0() -> None:
    assert chain_start(None, None, select=SELECT, backfill=("revenue",)) == Chain(
        LoadMode.INITIAL, None, False, 0, ("revenue",)
    )


def test_a_stored_delta_link_for_the_same_columns_goes_on_from_it() -> None:
    assert chain_start(None, cursor(), select=SELECT, backfill=()) == Chain(
        LoadMode.DELTA, "delta-1", False, 2
    )


def test_a_checkpoint_for_the_same_columns_resumes_where_it_stood() -> None:
    stood = checkpoint(backfill=("revenue",))
    chain = chain_start(stood, cursor(), select=SELECT, backfill=("revenue",))
    assert chain == Chain.resumed(stood)
    assert (chain.link, chain.resume, chain.rows_read, chain.pages, chain.total) == (
        "next-page",
        True,
        500,
        5,
        2000,
    )
    # Written back after one more page, it is the same checkpoint gone one page further.
    assert chain.checkpoint(SELECT, "page-7", rows_read=600, pages=6) == Checkpoint(
        LoadMode.RELOAD,
        SELECT,
        "page-7",
        3,
        ("revenue",),
        600,
        6,
        2000,
        "",
        "2026-12-01T00:00:00.000000Z",
    )


def test_a_checkpoint_of_other_columns_or_missing_a_backfill_is_left() -> None:
    # Left for the stored delta link, when that one serves the columns.
    chain = chain_start(checkpoint(select="accountid"), cursor(), select=SELECT, backfill=())
    assert chain == Chain(LoadMode.DELTA, "delta-1", False, 2)
    # Else a re-load, one generation past the newest known, the cursor's or the checkpoint's.
    chain = chain_start(checkpoint(), cursor(generation=7), select=SELECT, backfill=("revenue",))
    assert chain == Chain(LoadMode.RELOAD, None, False, 8, ("revenue",))
    chain = chain_start(
        checkpoint(select="accountid", generation=9), None, select=SELECT, backfill=()
    )
    assert chain == Chain(LoadMode.RELOAD, None, False, 10)


def test_a_delta_link_cannot_backfill_nor_serve_other_columns_nor_an_empty_link() -> None:
    for stored, backfill in [
        (cursor(), ("revenue",)),
        (cursor(select="accountid"), ()),
        (cursor(link=""), ()),  # `acctsync reset-cursors`
    ]:
        assert chain_start(None, stored, select=SELECT, backfill=backfill) == Chain(
            LoadMode.RELOAD, None, False, 3, backfill
        )


def test_a_refused_link_reads_the_table_again_one_generation_on() -> None:
    delta = Chain(LoadMode.DELTA, "delta-1", False, 2)
    assert chain_after_refusal(delta, cursor(generation=4), ("revenue",)) == Chain(
        LoadMode.RELOAD, None, False, 5, ("revenue",)
    )
    resumed = Chain.resumed(checkpoint(generation=6))
    assert chain_after_refusal(resumed, None, ()) == Chain(LoadMode.RELOAD, None, False, 7)
