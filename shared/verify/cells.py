"""Order-free digests of a table, per cell.

Dataverse pages rows in an order of its own (SQL uniqueidentifier order, not string order) and
the mirror keeps them per bucket, each in RowKey order, so the two sides cannot be merged on a
shared order. Instead each side reduces every in-scope row to a fingerprint, and sums the
fingerprints' hashes per cell: a cell is (bucket(id), the next four bits of the same crc32),
1,024 per table. A cell's digest (count, sum of 128-bit hashes mod 2**128) does not depend on
the order rows come in, is tiny and can be checkpointed; only cells whose digests differ are
read again, row by row.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from shared.mirror.records import BUCKETS

SUBCELLS = 16
CELLS = BUCKETS * SUBCELLS
_MODULUS = 2**128

# Per cell, how many fingerprints and the sum of their hashes: a page reduced where it was read.
CellSums = dict[int, tuple[int, int]]


def cell_of(record_id: str) -> int:
    # bucket() is the crc32's low six bits; the next four split a bucket into its cells.
    crc = zlib.crc32(record_id.encode())
    return (crc % BUCKETS) * SUBCELLS + (crc // BUCKETS) % SUBCELLS


def partition_of_cell(cell: int) -> str:
    return f"{cell // SUBCELLS:02d}"


def values_hash(values: Mapping[str, Any]) -> str:
    """The selected columns' values (Web API JSON form), as one short text."""
    text = orjson.dumps(dict(values), option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.blake2b(text, digest_size=16).hexdigest()


class Fingerprint(NamedTuple):
    """What both sides must agree on for one row: accounts (id, version), contacts also the
    account they belong to ("" for none), and with --deep the selected columns' values.
    (A tuple: one is made per row on each side, and a frozen dataclass is slower to build.)"""

    id: str
    version: int
    account: str = ""
    values: Mapping[str, Any] | None = None

    def hash(self) -> int:
        values = values_hash(self.values) if self.values is not None else ""
        # Ids and the values' hash are hex and dashes: the separator cannot occur in them.
        text = f"{self.id}|{self.version}|{self.account}|{values}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


@dataclass
class Digests:
    """Per cell: how many fingerprints, and the sum of their hashes."""

    counts: list[int] = field(default_factory=lambda: [0] * CELLS)
    sums: list[int] = field(default_factory=lambda: [0] * CELLS)

    def add(self, fingerprint: Fingerprint) -> None:
        cell = cell_of(fingerprint.id)
        self.counts[cell] += 1
        self.sums[cell] = (self.sums[cell] + fingerprint.hash()) % _MODULUS

    def add_all(self, fingerprints: Iterable[Fingerprint]) -> None:
        for fingerprint in fingerprints:
            self.add(fingerprint)

    def add_sums(self, sums: CellSums) -> None:
        for cell, (count, total) in sums.items():
            self.counts[cell] += count
            self.sums[cell] = (self.sums[cell] + total) % _MODULUS

    def remove(self, fingerprint: Fingerprint) -> None:
        """Take back one `add` of the same fingerprint (the sums are a multiset's)."""
        cell = cell_of(fingerprint.id)
        self.counts[cell] -= 1
        self.sums[cell] = (self.sums[cell] - fingerprint.hash()) % _MODULUS

    def merge(self, other: Digests, cells: Iterable[int]) -> None:
        """Take `other`'s digests of `cells` (those are its own: a partition's cells)."""
        for cell in cells:
            self.counts[cell] = other.counts[cell]
            self.sums[cell] = other.sums[cell]

    def differing(self, other: Digests) -> list[int]:
        return [
            cell
            for cell in range(CELLS)
            if (self.counts[cell], self.sums[cell]) != (other.counts[cell], other.sums[cell])
        ]

    def to_json(self) -> dict[str, Any]:
        # Sparse: most cells of a small table are empty.
        used = [c for c in range(CELLS) if self.counts[c]]
        return {str(c): [self.counts[c], format(self.sums[c], "x")] for c in used}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Digests:
        digests = cls()
        for cell, (count, total) in data.items():
            digests.counts[int(cell)] = int(count)
            digests.sums[int(cell)] = int(total, 16)
        return digests


def cell_sums(fingerprints: Iterable[Fingerprint]) -> CellSums:
    sums: CellSums = {}
    for fingerprint in fingerprints:
        cell = cell_of(fingerprint.id)
        count, total = sums.get(cell, (0, 0))
        sums[cell] = (count + 1, (total + fingerprint.hash()) % _MODULUS)
    return sums


def cell_groups(cells: list[int], counts: list[int], *, max_rows: int) -> list[list[int]]:
    """Differing cells in groups that hold at most `max_rows` Dynamics rows each (a cell that
    alone has more makes a group of its own)."""
    groups: list[list[int]] = []
    current: list[int] = []
    held = 0
    for cell in cells:
        if current and held + counts[cell] > max_rows:
            groups.append(current)
            current, held = [], 0
        current.append(cell)
        held += counts[cell]
    if current:
        groups.append(current)
    return groups
