"""Where a verify under way stands, kept in a blob after every page so that the next heartbeat
goes on from there (a verify killed mid-way loses at most one page).

Per table: its digests on both sides, the partitions of the mirror read so far, the pending
ids, the cells being compared row by row and the drift found. The Dynamics rows a row-by-row
comparison holds are kept in blobs of their own, one per page read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.state.verify import Drift, DriftKind, VerifyRequest
from shared.times import iso_precise, parse_iso
from shared.verify.cells import Digests
from shared.verify.compared_rows import DynamicsRow, TableSpec

# Ids kept to leave out of the mirror's digests and to repair; past these, only counted (a
# pending id not kept costs a row-by-row look at its cell, which finds it pending again).
MAX_PENDING_KEPT = 100_000
MAX_DRIFT_KEPT = 100_000


class Stage(StrEnum):
    DYNAMICS = "dynamics"  # pass 1: Dynamics paged into digests
    MIRROR = "mirror"  # pass 1: the mirror's partitions into digests
    CELLS = "cells"  # pass 2: the cells that differ, row by row
    DONE = "done"


@dataclass
class TableRun:
    spec: TableSpec
    read_at: datetime | None  # when the last cycle read the table (its chain began)
    stage: Stage = Stage.DYNAMICS
    link: str | None = None  # the next page of the Dynamics read under way
    pages: int = 0  # pages of that read so far
    dynamics: Digests = field(default_factory=Digests)
    mirror: Digests = field(default_factory=Digests)
    partitions: dict[str, dict[str, str] | None] = field(default_factory=dict)  # read on
    done_partitions: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    pending_count: int = 0
    checked: int = 0
    groups: list[list[int]] = field(default_factory=list)  # pass 2: the first is under way
    group_read: bool = False  # the Dynamics rows of the first group are all held
    changed_since: list[str] | None = None  # what the delta link says changed since the read
    drift: list[Drift] = field(default_factory=list)
    by_kind: dict[DriftKind, int] = field(default_factory=dict)

    @property
    def entity_set(self) -> str:
        return self.spec.entity_set

    def add_pending(self, record_id: str) -> None:
        self.pending_count += 1
        if len(self.pending) < MAX_PENDING_KEPT:
            self.pending.append(record_id)

    def add_drift(self, drift: Drift) -> None:
        self.by_kind[drift.kind] = self.by_kind.get(drift.kind, 0) + 1
        if len(self.drift) < MAX_DRIFT_KEPT:
            self.drift.append(drift)

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "read_at": iso_precise(self.read_at) if self.read_at else None,
            "stage": self.stage.value,
            "link": self.link,
            "pages": self.pages,
            "dynamics": self.dynamics.to_json(),
            "mirror": self.mirror.to_json(),
            "partitions": self.partitions,
            "done_partitions": self.done_partitions,
            "pending": self.pending,
            "pending_count": self.pending_count,
            "checked": self.checked,
            "groups": self.groups,
            "group_read": self.group_read,
            "changed_since": self.changed_since,
            "drift": [d.to_json() for d in self.drift],
            "by_kind": {k.value: n for k, n in self.by_kind.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableRun:
        return cls(
            spec=TableSpec.from_json(data["spec"]),
            read_at=parse_iso(data["read_at"]) if data["read_at"] else None,
            stage=Stage(data["stage"]),
            link=data["link"],
            pages=int(data["pages"]),
            dynamics=Digests.from_json(data["dynamics"]),
            mirror=Digests.from_json(data["mirror"]),
            partitions=data["partitions"],
            done_partitions=list(data["done_partitions"]),
            pending=list(data["pending"]),
            pending_count=int(data["pending_count"]),
            checked=int(data["checked"]),
            groups=[list(g) for g in data["groups"]],
            group_read=bool(data["group_read"]),
            changed_since=data["changed_since"],
            drift=[Drift.from_json(d) for d in data["drift"]],
            by_kind={DriftKind(k): int(n) for k, n in data["by_kind"].items()},
        )


@dataclass
class VerifyRun:
    request: VerifyRequest
    started_at: datetime
    tables: list[TableRun]  # contacts first, as a cycle reads them
    repairing: bool = False
    repair_position: dict[str, int] = field(default_factory=dict)  # drift repaired, per table
    repaired: int = 0
    drift_left: list[Drift] = field(default_factory=list)
    requests: int = 0
    heartbeats: int = 0

    @property
    def current(self) -> TableRun | None:
        return next((t for t in self.tables if t.stage is not Stage.DONE), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request.to_json(),
            "started_at": iso_precise(self.started_at),
            "tables": [t.to_json() for t in self.tables],
            "repairing": self.repairing,
            "repair_position": self.repair_position,
            "repaired": self.repaired,
            "drift_left": [d.to_json() for d in self.drift_left],
            "requests": self.requests,
            "heartbeats": self.heartbeats,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifyRun:
        return cls(
            request=VerifyRequest.from_json(data["request"]),
            started_at=parse_iso(data["started_at"]),
            tables=[TableRun.from_json(t) for t in data["tables"]],
            repairing=bool(data["repairing"]),
            repair_position={k: int(v) for k, v in data["repair_position"].items()},
            repaired=int(data["repaired"]),
            drift_left=[Drift.from_json(d) for d in data["drift_left"]],
            requests=int(data["requests"]),
            heartbeats=int(data["heartbeats"]),
        )


class RunStore:
    """The blobs of the verify under way: `verify/<id>/run.json` and the rows held by the
    row-by-row comparison, `verify/<id>/held/<table>/<page>.json`."""

    def __init__(self, container: ContainerClient):
        self.container = container

    def load(self, verify_id: str) -> VerifyRun | None:
        try:
            text = self.container.download_blob(f"verify/{verify_id}/run.json").readall()
        except ResourceNotFoundError:
            return None
        return VerifyRun.from_json(json.loads(text))

    def save(self, run: VerifyRun) -> None:
        body = json.dumps(run.to_json()).encode()
        self.container.upload_blob(f"verify/{run.request.id}/run.json", body, overwrite=True)

    def hold(self, verify_id: str, entity_set: str, page: int, rows: list[DynamicsRow]) -> None:
        name = f"verify/{verify_id}/held/{entity_set}/{page:07d}.json"
        body = json.dumps([r.to_json() for r in rows]).encode()
        self.container.upload_blob(name, body, overwrite=True)

    def held(self, verify_id: str, entity_set: str) -> Iterable[DynamicsRow]:
        for name in self.container.list_blob_names(
            name_starts_with=f"verify/{verify_id}/held/{entity_set}/"
        ):
            for row in json.loads(self.container.download_blob(name).readall()):
                yield DynamicsRow.from_json(row)

    def drop_held(self, verify_id: str, entity_set: str) -> None:
        self._drop(f"verify/{verify_id}/held/{entity_set}/")

    def drop(self, verify_id: str) -> None:
        self._drop(f"verify/{verify_id}/")

    def _drop(self, prefix: str) -> None:
        for name in list(self.container.list_blob_names(name_starts_with=prefix)):
            self.container.delete_blob(name)
