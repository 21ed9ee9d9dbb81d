"""What the appliers of one batch share: the services, the batch, its result and its clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared import telemetry
from shared.mapping import ColumnType, to_stored
from shared.services import Services
from shared.state.errors import ErrorCode
from shared.state.results import BatchResult, ChangeLag
from shared.state.schedule import LoadMode
from shared.sync.batches import Batch
from shared.times import utcnow


@dataclass
class ApplyContext:
    services: Services
    batch: Batch
    result: BatchResult = field(default_factory=BatchResult)
    now: datetime = field(default_factory=utcnow)
    change_lag: ChangeLag = field(default_factory=ChangeLag)

    @property
    def first_load(self) -> bool:
        """A first load finds its rows missing: it writes them without reading first, and
        reads only the rows of a request that met one already there (a redelivery)."""
        return self.batch.mode == LoadMode.INITIAL

    @property
    def reload(self) -> bool:
        return self.batch.mode == LoadMode.RELOAD

    def error(self, entity: str, record_id: str, operation: str, message: str) -> None:
        """A record the mirror cannot hold: a sync error on it; the rest of the batch goes on."""
        self.result.errors += 1
        self.services.errors.record(
            entity=entity,
            record_id=record_id,
            operation=operation,
            message=message,
            cycle_id=self.batch.cycle_id,
            code=ErrorCode.UNSTORABLE_VALUE,
        )

    def lag(self, modified_on: str | None) -> None:
        """How long after its change in Dynamics a row reached the mirror."""
        changed_at = change_time(modified_on)
        if changed_at is not None:
            lag = max((utcnow() - changed_at).total_seconds(), 0.0)
            self.change_lag.observe(lag)  # kept per batch for the console's chart
            telemetry.observe("acctsync.change_lag_s", lag, mode=self.batch.mode.value)


def change_time(modified_on: str | None) -> datetime | None:
    if not modified_on:
        return None
    stored = to_stored("modifiedon", ColumnType.DATETIME, modified_on)
    return stored if isinstance(stored, datetime) else None
