"""Everything one simulator process holds, shared by its three listeners."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from acctsync.sim.auth import TokenService
from acctsync.sim.columns import Columns
from acctsync.sim.faults import FaultInjector
from acctsync.sim.http import RequestLog
from acctsync.sim.org import Org
from acctsync.sim.privileges import Privileges
from acctsync.sim.protection import ServiceProtection
from acctsync.sim.schema import TABLES
from acctsync.sim.security import FieldSecurity
from acctsync.sim.store import Store

DEFAULT_DELTA_RETENTION_S = 7 * 24 * 3600.0


def default_change_tracking() -> dict[str, bool]:
    """EntityMetadata.ChangeTrackingEnabled per table: on for both, as acctsync needs."""
    return {name: True for name in TABLES}


@dataclass
class Simulation:
    org: Org
    tokens: TokenService
    # The organisation URL (DATAVERSE_URL), without a trailing slash.
    base_url: str
    store: Store = field(default_factory=Store)
    security: FieldSecurity = field(default_factory=FieldSecurity)
    # Deleted custom columns; reset in place, as the control surface's record writers hold it.
    columns: Columns = field(default_factory=Columns)
    protection: ServiceProtection = field(default_factory=ServiceProtection)
    faults: FaultInjector = field(default_factory=FaultInjector)
    log: RequestLog = field(default_factory=RequestLog)
    # ChangeTrackingEnabled per table (logical name).
    change_tracking: dict[str, bool] = field(default_factory=default_change_tracking)
    # How long a delta token stays usable (Organization.ExpireChangeTrackingInDays).
    delta_retention_s: float = DEFAULT_DELTA_RETENTION_S
    # Delta tokens issued before this moment come from another run and are refused.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    # Role privileges of the application user and the sync user; reset in place.
    privileges: Privileges = field(init=False)

    def __post_init__(self) -> None:
        self.privileges = Privileges((self.org.app_user.id, self.org.sync_user.id))

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/data/v9.2/"

    def name_of(self, table: str, row_id: str) -> str | None:
        """The primary name of a lookup target, for formatted values."""
        if table in self.store.tables:
            data = self.store.data(table)
            row = data.rows.get(row_id)
            value = row.values.get(data.table.primary_name) if row else None
            return value if isinstance(value, str) else None
        if table == "transactioncurrency" and row_id == self.org.currency_id:
            return self.org.currency_name
        principal = self.org.principal(row_id)
        return principal.name if principal else None
