"""The long-lived parts one process shares: storage clients, the Dataverse client and the
repositories, built from the settings on first use."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

from shared.mirror.activities import ActivityLog
from shared.mirror.feed_index import Feed
from shared.mirror.initial import InitialLoads
from shared.mirror.members import Memberships
from shared.mirror.records import AccountMirror, ContactMirror
from shared.mirror.search import SearchIndex
from shared.mirror.tokens import PageTokens, TokenKeys
from shared.settings import Settings, get_settings
from shared.state.audit_trail import AuditTrail
from shared.state.cursors import Cursors
from shared.state.field_selections import FieldSelections
from shared.state.filtered_accounts import FilteredAccounts
from shared.state.history import CycleHistory
from shared.state.liveness import Liveness
from shared.state.pause_switch import PauseSwitch
from shared.state.results import CycleResults
from shared.state.resync_queue import Resyncs
from shared.state.schedule import CycleSchedule
from shared.state.sync_errors import SyncErrors
from shared.state.verify import VerifyStore
from shared.storage import (
    ACCOUNTS_TABLE,
    ACTIVITIES_TABLE,
    CONTACTS_TABLE,
    ERRORS_TABLE,
    FEED_TABLE,
    MEMBERS_TABLE,
    SEARCH_TABLE,
    STATE_TABLE,
    Storage,
)

if TYPE_CHECKING:
    from shared.dataverse.client import DataverseClient


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.storage = Storage(settings.storage)
        self._dataverse: DataverseClient | None = None
        self._lock = threading.Lock()

    def dataverse(self) -> DataverseClient:
        # Imported here: the queue worker never talks to Dataverse, and a new instance of it
        # should not pay for httpx and msal (Flex Consumption scales it out on its own).
        from shared.dataverse.client import DataverseClient

        with self._lock:
            if self._dataverse is None:
                self._dataverse = DataverseClient(self.settings.require_dataverse())
            return self._dataverse

    def ready(self) -> Services:
        self.storage.ensure()
        return self

    def close(self) -> None:
        if self._dataverse is not None:
            self._dataverse.close()
        self.storage.close()

    @cached_property
    def accounts(self) -> AccountMirror:
        return AccountMirror(self.storage.table(ACCOUNTS_TABLE))

    @cached_property
    def contacts(self) -> ContactMirror:
        return ContactMirror(self.storage.table(CONTACTS_TABLE))

    @cached_property
    def members(self) -> Memberships:
        return Memberships(self.storage.table(MEMBERS_TABLE), former=self.feed.table)

    @cached_property
    def feed(self) -> Feed:
        return Feed(self.storage.table(FEED_TABLE), settle_s=self.settings.feed_settle_seconds)

    @cached_property
    def initial_loads(self) -> InitialLoads:
        return InitialLoads(self.storage.table(STATE_TABLE))

    @cached_property
    def search(self) -> SearchIndex:
        return SearchIndex(self.storage.table(SEARCH_TABLE))

    @cached_property
    def page_tokens(self) -> PageTokens:
        return PageTokens(TokenKeys(self.storage.table(STATE_TABLE)).key())

    @cached_property
    def activities(self) -> ActivityLog:
        return ActivityLog(self.storage.table(ACTIVITIES_TABLE))

    @cached_property
    def cursors(self) -> Cursors:
        return Cursors(self.storage.table(STATE_TABLE))

    @cached_property
    def schedule(self) -> CycleSchedule:
        return CycleSchedule(self.storage.table(STATE_TABLE))

    @cached_property
    def results(self) -> CycleResults:
        return CycleResults(self.storage.table(STATE_TABLE))

    @cached_property
    def history(self) -> CycleHistory:
        return CycleHistory(self.storage.table(STATE_TABLE))

    @cached_property
    def fields(self) -> FieldSelections:
        return FieldSelections(self.storage.table(STATE_TABLE))

    @cached_property
    def pauses(self) -> PauseSwitch:
        return PauseSwitch(self.storage.table(STATE_TABLE))

    @cached_property
    def liveness(self) -> Liveness:
        return Liveness(self.storage.table(STATE_TABLE))

    @cached_property
    def filtered(self) -> FilteredAccounts:
        return FilteredAccounts(self.storage.table(STATE_TABLE))

    @cached_property
    def resyncs(self) -> Resyncs:
        return Resyncs(self.storage.table(STATE_TABLE))

    @cached_property
    def verifies(self) -> VerifyStore:
        return VerifyStore(self.storage.table(STATE_TABLE))

    @cached_property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.storage.table(STATE_TABLE))

    @cached_property
    def errors(self) -> SyncErrors:
        return SyncErrors(self.storage.table(ERRORS_TABLE))


_services: Services | None = None
_services_lock = threading.Lock()


def get_services() -> Services:
    """The process-wide services (what the Functions triggers use)."""
    global _services
    with _services_lock:
        if _services is None:
            _services = Services(get_settings()).ready()
        return _services


def reset_services() -> None:
    """Forget the process-wide services and settings (after the environment changed)."""
    global _services
    with _services_lock:
        if _services is not None:
            _services.close()
        _services = None
    get_settings.cache_clear()
