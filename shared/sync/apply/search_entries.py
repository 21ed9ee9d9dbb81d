"""The apply step's part of the search index (shared/mirror/search.py): every row it writes
gets the entries of its searchable values, before the row (a crash in between is redone on
redelivery, the entries are idempotent), and a value it replaces loses its entry.

A re-load indexes the rows it finds unchanged too: that is how a mirror made before the
index existed gets one (docs/console.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.mirror.search import SearchKind
from shared.sync.apply.context import ApplyContext


def index_rows(
    context: ApplyContext,
    kind: SearchKind,
    rows: Iterable[Mapping[str, Any]],
    before: Mapping[str, Mapping[str, Any]],
) -> None:
    """Index `rows` about to be written; `before`: the rows they replace, by id (those read).
    A first load's rows are indexed by batches of their own (Batch.search_apart)."""
    if context.batch.search_apart:
        return
    context.services.search.update(kind, ((before.get(str(r["RowKey"])), r) for r in rows))


def index_unchanged(
    context: ApplyContext, kind: SearchKind, rows: Iterable[Mapping[str, Any]]
) -> None:
    """A re-load's unchanged rows: entries for their values (built once, rewritten after)."""
    if context.reload:
        context.services.search.update(kind, ((row, row) for row in rows))
