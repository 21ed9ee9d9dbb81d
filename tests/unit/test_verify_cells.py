"""The pure parts of `acctsync verify`: cells and digests, and what kind of drift a record is."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

from shared.mirror.records import bucket
from shared.state.verify import DriftKind
from shared.verify.cells import (
    CELLS,
    Digests,
    Fingerprint,
    cell_groups,
    cell_of,
    cell_sums,
    partition_of_cell,
)
from shared.verify.classify import classify, drift_of
from shared.verify.compared_rows import DynamicsRow, MirrorRow, TableSpec

IDS = [str(uuid.UUID(int=random.Random(7).getrandbits(128) + n)) for n in range(2000)]


def test_a_cell_lies_in_its_records_partition_and_ids_spread_over_all_cells() -> None:
    for record_id in IDS:
        assert partition_of_cell(cell_of(record_id)) == bucket(record_id)
    used = {cell_of(i) for i in IDS}
    assert len(used) > CELLS * 0.8  # 2,000 ids over 1,024 cells: the second hash spreads them


def test_digests_do_not_depend_on_order_and_see_any_one_change() -> None:
    rows = [Fingerprint(i, n, "") for n, i in enumerate(IDS)]
    forward, backward = Digests(), Digests()
    forward.add_all(rows)
    backward.add_all(reversed(rows))
    assert forward.differing(backward) == []
    assert Digests.from_json(forward.to_json()).differing(forward) == []
    for changed in (
        Fingerprint(IDS[5], 6, ""),  # another version
        Fingerprint(IDS[5], 5, str(uuid.uuid4())),  # another account
        Fingerprint(IDS[5], 5, "", {"name": "x"}),  # other values
    ):
        other = Digests()
        other.add_all([changed if r.id == IDS[5] else r for r in rows])
        assert other.differing(forward) == [cell_of(IDS[5])]
    missing = Digests()
    missing.add_all(rows[1:])
    assert missing.differing(forward) == [cell_of(IDS[0])]


def test_pages_reduced_to_cell_sums_add_up_to_the_same_digests_as_their_rows() -> None:
    rows = [Fingerprint(i, n, "") for n, i in enumerate(IDS)]
    by_row, by_page = Digests(), Digests()
    by_row.add_all(rows)
    for start in range(0, len(rows), 300):
        by_page.add_sums(cell_sums(rows[start : start + 300]))
    assert by_page.differing(by_row) == []
    by_page.add_sums(cell_sums(rows[:1]))  # a page counted twice shows
    assert by_page.differing(by_row) == [cell_of(IDS[0])]


def test_cells_are_grouped_within_the_rows_a_group_may_hold() -> None:
    counts = [0] * CELLS
    counts[1], counts[2], counts[3], counts[4] = 30, 30, 80, 10
    assert cell_groups([1, 2, 3, 4], counts, max_rows=60) == [[1, 2], [3], [4]]


def dyn(version: int = 5, account: str = "", **kw: object) -> DynamicsRow:
    return DynamicsRow("a", version, account, **kw)  # type: ignore[arg-type]


def mir(version: int = 5, account: str = "", **kw: object) -> MirrorRow:
    return MirrorRow("a", version, account, **kw)  # type: ignore[arg-type]


def test_each_kind_of_drift() -> None:
    assert classify(dyn(), mir()) is None
    assert classify(dyn(), None) is DriftKind.MISSING
    assert classify(dyn(), mir(deleted=True)) is DriftKind.WRONGLY_DELETED
    assert classify(None, mir()) is DriftKind.NOT_DELETED
    assert classify(None, mir(deleted=True)) is None
    assert classify(dyn(6), mir(5)) is DriftKind.STALE
    assert classify(dyn(account="x"), mir(account="y")) is DriftKind.WRONG_ACCOUNT
    # The sync filter: an account it keeps out is not missing; a live unmarked one is stale.
    assert classify(dyn(filtered=True), None) is None
    assert classify(dyn(filtered=True), mir(filtered=True)) is None
    assert classify(dyn(filtered=True), mir()) is DriftKind.STALE
    assert classify(dyn(), mir(filtered=True)) is DriftKind.STALE


def test_values_drift_leaves_out_local_edits() -> None:
    theirs = dyn(values={"name": "Contoso", "revenue": 10.0})
    assert classify(theirs, mir(values={"name": "Contoso", "revenue": 10.0})) is None
    assert classify(theirs, mir(values={"name": "Edited", "revenue": 10.0})) is DriftKind.VALUES
    edited = mir(values={"name": "Edited", "revenue": 10.0}, local=frozenset({"name"}))
    assert classify(theirs, edited) is None
    also = mir(values={"name": "Edited", "revenue": 11.0}, local=frozenset({"name"}))
    assert classify(theirs, also) is DriftKind.VALUES


def test_pending_rows_are_left_out_and_a_change_in_the_second_of_the_read_is_pending() -> None:
    read_at = datetime(2026, 1, 1, 12, 0, 0, 400_000, tzinfo=UTC)
    assert DynamicsRow("a", 1, modified_on="2026-01-01T12:00:00Z").pending(read_at)
    assert not DynamicsRow("a", 1, modified_on="2026-01-01T11:59:59Z").pending(read_at)
    dynamics = {"a": DynamicsRow("a", 2), "b": DynamicsRow("b", 1)}
    mirror = {"a": MirrorRow("a", 1), "c": MirrorRow("c", 1)}
    found = list(drift_of("accounts", dynamics, mirror, pending={"a"}))
    assert [(d.id, d.kind) for d in found] == [("b", DriftKind.MISSING), ("c", "not_deleted")]


def test_a_contact_whose_parent_is_a_contact_belongs_to_no_account() -> None:
    spec = TableSpec("contacts")
    parent = str(uuid.uuid4())
    row = {
        "contactid": IDS[0],
        "versionnumber": 3,
        "_parentcustomerid_value": parent,
        "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
    }
    assert spec.dynamics_row(row) == DynamicsRow(IDS[0], 3, "")
    row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] = "account"
    assert spec.dynamics_row(row) == DynamicsRow(IDS[0], 3, parent)
    assert spec.dynamics_row({**row, "contactid": "not a guid"}) is None
