"""The body of `/api/sync/status` (shared/sync/status.py `SyncStatus.to_json`), every nested
object a model, so the OpenAPI description documents each field.

Each model declares its fields in the order the JSON has always listed them. The route answers
with `response_model_exclude_unset`: a cycle row leaves out the fields the other kind of row
has, as it always did. `extra="forbid"`: a key the JSON gained and a model lacks fails loudly
instead of being dropped from the answer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.state.filtered_accounts import FilterState
from shared.state.results import CycleStatus
from shared.state.resync_queue import ResyncKind, ResyncStatus
from shared.state.schedule import LoadMode
from shared.state.summary import StageSummary
from shared.state.verify import VerifyTrigger
from shared.sync.health import Verdict


class StatusModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeldBatchesState(StatusModel):
    worker: str = Field(description="the stopped worker that took the batches")
    back_at: str | None = Field(description="when the queue makes them visible again")
    cycle_id: str
    batches: list[str] = Field(description="the ids of the batches it holds")


class HealthState(StatusModel):
    verdict: Verdict
    why: str | None = Field(description="the reasons, in one line; null when healthy")
    fix: str | None = Field(description="what to do, when something is wrong")
    last_success_at: str | None = Field(
        description="when the last cycle that did not fail finished"
    )
    stalled_after_s: float = Field(description="stalled when no cycle succeeds for this long")
    reasons: list[str]
    heartbeat_at: str | None = Field(description="the host's last timer heartbeat")
    heartbeat_age_s: float | None
    held_batches: list[HeldBatchesState] = Field(
        description="batches stopped workers hold; they come back by themselves"
    )
    no_progress_s: float | None = Field(
        description="how long the running stage has applied no batch (when too long)"
    )


class TablePlanState(StatusModel):
    mode: LoadMode = Field(description="first load, delta, or a full re-read (reload)")
    changed: int = Field(description="changed rows read so far")
    pages: int
    generation: int = Field(description="the table's load generation")
    restarted: str | None = Field(description="why the table's page chain started over")
    first_batch: int = Field(description="number of the table's first batch this cycle; 0: none")
    last_batch: int
    sweep_skipped: str | None = Field(description="why the re-load's sweep must not run")


class CyclePlanState(StatusModel):
    tables: dict[str, TablePlanState] = Field(description="per entity set, what was read")
    batches: int = Field(description="batches enqueued so far")
    errors: int
    backfill: list[str] = Field(description="newly selected columns this cycle loads")
    unreadable_fields: list[str]
    dataverse_requests: int
    dataverse_throttled: int
    heartbeats: int = Field(description="heartbeats the planning has taken so far")
    resync: str = Field(description="the re-sync whose next chunk this cycle reads, or empty")


class FailureState(StatusModel):
    at: str
    step: str = Field(description="the step that failed (contacts, accounts, ...), or empty")
    message: str
    fix: str = Field(description="what to do about it")
    needs_action: bool = Field(description="retrying changes nothing until someone acts")


class ChangeLagState(StatusModel):
    rows: int
    mean_s: float | None = Field(description="mean seconds from a change in Dynamics to the mirror")
    max_s: float


class CycleRow(StatusModel):
    """The running cycle (status in_process: what it read so far, its step) or a finished one
    (its summary); a field only one of them has is absent from the other."""

    cycle_id: str
    status: CycleStatus
    started_at: str | None
    step: str | None = Field(None, description="running only: the step it is at")
    finished_at: str | None = None
    accounts_changed: int
    contacts_changed: int
    batches: int = Field(description="batches enqueued")
    batches_applied: int | None = None
    batches_poisoned: int | None = Field(None, description="batches that went to the poison queue")
    batches_missing: int | None = None
    missing_batches: list[str] | None = Field(None, description="the first missing batches' ids")
    sweeps_skipped: dict[str, str] | None = Field(None, description="per table, why not swept")
    accounts_applied: int | None = None
    contacts_applied: int | None = None
    skipped: int | None = None
    deleted: int | None = None
    accounts_filtered: int | None = Field(None, description="accounts the sync filter kept out")
    resync: str | None = Field(None, description="the re-sync whose chunk it read")
    resync_refreshed: int | None = None
    activities_logged: int | None = None
    activities_suppressed: int | None = Field(
        None, description="not logged: the account had over ACTIVITY_CONTACT_LIMIT contacts"
    )
    errors: int | None = Field(None, description="records and batches that failed")
    modes: dict[str, LoadMode] = Field(description="per table: initial, delta or reload")
    restarted: dict[str, str] = Field(description="per table, why its page chain started over")
    backfill: list[str] | None = None
    unreadable_fields: list[str] | None = None
    dataverse_requests: int | None = None
    dataverse_throttled: int | None = None
    planning_heartbeats: int | None = None
    stages: list[StageSummary] | None = Field(None, description="the applied batches per stage")
    change_lag_s: ChangeLagState | None = None
    failure: FailureState | None = Field(None, description="set when its planning failed")
    duration_s: float | None = None


class SyncFilterState(StatusModel):
    column: str = Field(description="SYNC_FILTER_COLUMN, the account Two Options column")
    state: FilterState = Field(description="active, or why it filters nothing")
    detail: str


class ResyncRow(StatusModel):
    """A re-sync of one account column (Quick Sync: every account; Advanced: a date range)."""

    id: str
    field: str = Field(description="the selected account column, by logical name")
    kind: ResyncKind
    requested_at: str
    requested_by: str
    modified_since: str | None
    modified_until: str | None
    status: ResyncStatus
    started_at: str | None
    finished_at: str | None
    rows_read: int = Field(description="accounts read from Dynamics so far")
    pages: int
    total: int | None = Field(description="accounts in Dynamics when a Quick Sync began")
    batches: int
    refreshed: int = Field(description="accounts whose value it wrote, in the applied batches")
    cycle_id: str = Field(description="the cycle that read its last page")
    message: str = Field(description="why it was cancelled, when it was")


class VerifyRequestRow(StatusModel):
    id: str = Field(description="the verify's id: GET /api/sync/verify answers it when done")
    trigger: VerifyTrigger
    requested_at: str
    requested_by: str
    repair: bool = Field(description="re-read the drifted records and apply them")
    deep: bool = Field(description="also compare the selected columns' values")


class VerifyRunning(VerifyRequestRow):
    table: str | None = Field(description="the entity set it compares now")
    stage: str | None = Field(description="dynamics, mirror, cells, done, or repair")


class VerifyLast(StatusModel):
    """The last verify's summary (GET /api/sync/verify has all of it)."""

    id: str
    trigger: VerifyTrigger
    finished_at: str
    duration_s: float
    deep: bool
    repair: bool
    drift: int = Field(description="records where the mirror differs from Dynamics")
    by_kind: dict[str, int] = Field(description="drift per kind: missing, stale, ...")
    repaired: int
    drift_left: int = Field(description="drift a repair left")
    error: str | None = Field(description="why it stopped, when it did")
    dataverse_requests: int
    samples: list[str] = Field(description="ids of the first drifted records")


class VerifyState(StatusModel):
    last: VerifyLast | None
    running: VerifyRunning | None = Field(description="the verify under way, and where it is")
    requested: VerifyRequestRow | None = Field(description="asked for, waiting to start")
    next_due: str | None = Field(description="the next scheduled verify; null when off")


class SyncErrorRow(StatusModel):
    """A sync error: a record the mirror cannot hold, or a batch or planning that failed."""

    entity: str = Field(description="account, contact, batch or cycle")
    id: str = Field(description="the record's (or batch's, cycle's) id")
    operation: str
    code: str = Field(description="a word a script can test, e.g. `unstorable_value`")
    message: str
    cycle_id: str
    at: str
    retried_at: str | None = Field(description="when `retry-errors` read the record again")
    resolved: bool | None = Field(description="whether that retry resolved it")
    retry_message: str = Field(description="why it still fails after the retry")


class CheckpointState(StatusModel):
    mode: LoadMode
    rows_read: int = Field(description="rows the table's page chain has read, across heartbeats")
    pages: int


class LeaseState(StatusModel):
    owner: str = Field(description="the heartbeat that plans now")
    until: str | None = Field(description="when its lease runs out unless it renews it")


class SyncStatusBody(StatusModel):
    """What `acctsync status` prints (shared/sync/status.py)."""

    health: HealthState = Field(
        description="the verdict (healthy, recovering, stalled, host_down), why, and what to do"
    )
    paused: bool = Field(description="no cycle or step starts; queued batches still apply")
    paused_since: str | None
    phase: Literal["idle", "planning", "applying", "verifying"]
    current_cycle: str | None
    current_stage: str | None = Field(
        description="the running cycle's step: contacts, [contacts_sweep,] accounts, ..."
    )
    current_plan: CyclePlanState | None = Field(description="what the running cycle read so far")
    checkpoints: dict[str, CheckpointState] = Field(
        description="per table, where its page chain stands while read over several heartbeats"
    )
    lease: LeaseState | None
    last_cycles: list[CycleRow] = Field(
        description="the running cycle (status in_process) and the last finished ones, newest "
        "first: status succeeded, incomplete or failed, counts, modes, stages, failure"
    )
    next_due: str | None = Field(description="none while a cycle runs or the sync is paused")
    queue_backlog: int = Field(description="batches waiting on the queue")
    poison_count: int = Field(description="batches that did not apply: `replay-poison`")
    cursor_age_s: dict[str, float] = Field(description="per table, since its delta link moved")
    unreadable_fields: list[str]
    unreadable_columns: dict[str, dict[str, str]] = Field(
        description="per table, the columns the sync user cannot read, and why"
    )
    sync_filter: SyncFilterState | None = Field(
        description="the sync filter as the last cycle found it; null before any cycle"
    )
    filtered_accounts: int = Field(description="accounts the sync filter keeps out")
    resyncs: list[ResyncRow] = Field(
        description="queued, running and recently finished re-syncs, oldest first"
    )
    verify: VerifyState = Field(description="the last verify, the one under way or asked for")
    last_failure: FailureState | None = Field(description="the last planning step that failed")
    failures_in_a_row: int = Field(description="cycles whose planning failed, in a row")
    last_errors: list[SyncErrorRow] = Field(description="the latest sync errors, newest first")
