"""What a verify reads from Dynamics: plain pages of a table (no change tracking, so no delta
link moves), the ids its stored delta link says changed since, and given ids point-wise."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator

from shared.dataverse.client import DataverseClient, DataverseError
from shared.ids import InvalidId, parse_guid
from shared.state.cursors import Cursor
from shared.verify.compared_rows import DynamicsRow, TableSpec

logger = logging.getLogger(__name__)

# Ids per $filter of a point read: 50 GUIDs keep the URL near 3,000 characters, well inside
# the 32 KB Dataverse takes.
IDS_PER_REQUEST = 50


def dynamics_page(
    client: DataverseClient, spec: TableSpec, *, link: str | None, page_size: int
) -> tuple[list[DynamicsRow], str | None]:
    """One page of the table (the first when `link` is None) and the link of the next."""
    # Keys and versions: no labels (they would triple a page, and nothing compares them).
    pages = client.rows(
        spec.entity_set, spec.select(), link=link, page_size=page_size, labels=False
    )
    page = next(pages)
    rows = [row for raw in page.rows if (row := spec.dynamics_row(raw)) is not None]
    return rows, page.next_link


def changed_since(client: DataverseClient, spec: TableSpec, cursor: Cursor | None) -> list[str]:
    """Ids changed or deleted in Dynamics since the last cycle read the table, from its stored
    delta link, read only: the link the answer carries is not kept, so the next cycle still
    reads these changes. Empty when there is no link to ask or Dynamics refuses it (drift
    candidates then stand as drift; a repair re-reads them anyway)."""
    if cursor is None or not cursor.delta_link:
        return []
    ids: list[str] = []
    try:
        client.check_stored_link(cursor.delta_link)
        for page in client.changes(spec.entity_set, [spec.key], link=cursor.delta_link):
            ids += page.deleted_ids
            for row in page.rows:
                with contextlib.suppress(InvalidId):
                    ids.append(parse_guid(row.get(spec.key)))
    except DataverseError as error:
        logger.warning("verify: the delta link of %s could not be read: %s", spec.entity_set, error)
        return []
    return ids


def read_ids(
    client: DataverseClient, spec: TableSpec, ids: Collection[str]
) -> dict[str, DynamicsRow]:
    """The rows Dynamics has of `ids` (an id it no longer has is left out)."""
    found: dict[str, DynamicsRow] = {}
    for group in _groups(sorted(ids), IDS_PER_REQUEST):
        where = " or ".join(f"{spec.key} eq {parse_guid(i)}" for i in group)
        for page in client.rows(spec.entity_set, spec.select(), where=where, labels=False):
            for raw in page.rows:
                if (row := spec.dynamics_row(raw)) is not None:
                    found[row.id] = row
    return found


def _groups(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
