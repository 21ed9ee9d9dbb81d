"""Retry failed records (the Data Export Service's "resync failed records"): the records that
Sync Errors name are read again from Dynamics and applied as a cycle would
(shared/sync/reread.py); each error then says when it was retried and whether that resolved it.

Only record-level errors can be retried. A batch that went to poison or a cycle whose reading
failed is not a record: the outcome says so and what to do instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from shared.audited_actions import audited
from shared.errors import AcctsyncError
from shared.ids import InvalidId, parse_guid
from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction
from shared.state.sync_errors import ErrorCode, ErrorFilter, RetryMark, SyncError
from shared.sync.reread import RereadOutcome, reread_and_apply
from shared.times import utcnow

# Error rows one retry looks through, newest first; a larger backlog takes more than one.
RETRY_LIMIT = 5_000
# The tables of record-level errors, in the order the cycle applies them.
ENTITY_SETS = {"contact": "contacts", "account": "accounts"}
NOT_A_RECORD = {
    ErrorCode.BATCH_POISONED: "a batch, not a record: fix the cause, then run "
    "`acctsync replay-poison`",
    ErrorCode.PLANNING_FAILED: "a cycle's reading of Dynamics, not a record: the next "
    "cycle reads again from where it stopped (`acctsync status` shows why it failed)",
}


class UnknownErrorCode(AcctsyncError, ValueError):
    """A code that no sync error has."""

    def __init__(self, code: str):
        codes = ", ".join(c.value for c in ErrorCode)
        super().__init__(f"{code!r} is not an error code; use one of {codes}")


@dataclass(frozen=True)
class Skipped:
    entity: str
    id: str
    code: str
    reason: str


@dataclass(frozen=True)
class Retried:
    entity: str
    id: str
    resolved: bool
    message: str  # the new failure, when still failing


@dataclass
class RetryOutcome:
    retried: list[Retried] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    activities_logged: int = 0
    activities_suppressed: int = 0
    dataverse_requests: int = 0

    def add(self, reread: RereadOutcome) -> None:
        self.activities_logged += reread.activities_logged
        self.activities_suppressed += reread.activities_suppressed
        self.dataverse_requests += reread.dataverse_requests

    def to_json(self) -> dict[str, Any]:
        resolved = sum(r.resolved for r in self.retried)
        return {
            "retried": len(self.retried),
            "resolved": resolved,
            "still_failing": len(self.retried) - resolved,
            "skipped": len(self.skipped),
            "activities_logged": self.activities_logged,
            "activities_suppressed": self.activities_suppressed,
            "dataverse_requests": self.dataverse_requests,
            "records": [asdict(r) for r in self.retried],
            "skipped_errors": [asdict(s) for s in self.skipped],
        }


def retry_errors(
    services: Services,
    *,
    actor: Actor,
    code: str | None = None,
    ids: Collection[str] | None = None,
) -> RetryOutcome:
    """Retry the unresolved errors with `code`, or naming one of `ids` (record ids as Sync
    Errors shows them), or all; UnknownErrorCode before anything is read. Recorded in the
    audit trail: what was asked, and the counts it came to."""
    asked = {"code": code, "ids": sorted(ids) if ids is not None else None}
    with audited(services, actor, AuditAction.RETRY, before=asked) as record:
        outcome = _retry(services, code=code, ids=ids)
        record.after = {k: v for k, v in outcome.to_json().items() if isinstance(v, int)}
    return outcome


def _retry(services: Services, *, code: str | None, ids: Collection[str] | None) -> RetryOutcome:
    if code is not None and code not in {c.value for c in ErrorCode}:  # "" is no code either
        raise UnknownErrorCode(code)
    wanted = {i.strip().lower() for i in ids} if ids is not None else None
    outcome = RetryOutcome()
    keys: dict[tuple[str, str], list[str]] = defaultdict(list)  # (entity, id) -> error rows
    skipped: dict[tuple[str, str], Skipped] = {}
    found: set[str] = set()
    for key, error in services.errors.keyed(ErrorFilter(code=code or ""), count=RETRY_LIMIT):
        named = {error.record_id.lower(), _record_id(error)}
        if wanted is not None and not named & wanted:
            continue
        found |= named
        if error.resolved:
            continue
        if record_id := record_of(error):
            keys[(error.entity, record_id)].append(key)
        else:
            skipped.setdefault((error.entity, error.record_id), _skipped(error))
    outcome.skipped = list(skipped.values())
    for missing in sorted((wanted or set()) - found):
        outcome.skipped.append(Skipped("", missing, "", "no sync error names this id"))
    started = utcnow()
    for entity in ENTITY_SETS:
        records = {i: k for (e, i), k in keys.items() if e == entity}
        if records:
            _retry_table(services, entity, records, outcome, at=started)
    return outcome


def _retry_table(
    services: Services,
    entity: str,
    records: dict[str, list[str]],
    outcome: RetryOutcome,
    *,
    at: datetime,
) -> None:
    """Re-read one table's records (id -> keys of its errors) and mark their errors."""
    client = services.dataverse()
    reread = reread_and_apply(services, client, ENTITY_SETS[entity], list(records), origin="retry")
    outcome.add(reread)
    failed = set(reread.failed_ids)
    marks: list[RetryMark] = []
    for record_id, keys in records.items():
        failure = _new_failure(services, entity, record_id, at) if record_id in failed else ""
        marks += [RetryMark(key, failure) for key in keys]
        outcome.retried.append(Retried(entity, record_id, not failure, failure))
    services.errors.mark_retried(marks, at=at)


def _new_failure(services: Services, entity: str, record_id: str, since: datetime) -> str:
    """What the retry's own sync error on the record says."""
    wanted = ErrorFilter(text=record_id, entity=entity, since=since)
    errors = services.errors.search(wanted, count=1)
    return errors[0].message if errors else "still failing: see Sync Errors"


def record_of(error: SyncError) -> str:
    """The id of the account or contact a sync error names, or "" when it names none that
    could be read again (then retrying it is skipped, with the reason)."""
    return _record_id(error) if error.entity in ENTITY_SETS else ""


def _record_id(error: SyncError) -> str:
    """The GUID an error names, or "" when it names none. A row Dataverse sent that could not
    be keyed is recorded with the repr() of its id, quotes included."""
    try:
        return parse_guid(error.record_id.strip("'\""))
    except InvalidId:
        return ""


def _skipped(error: SyncError) -> Skipped:
    reason = NOT_A_RECORD.get(error.code)
    if reason is None and error.entity in ENTITY_SETS:
        reason = "Dataverse sent no usable id for it: there is no record to read again"
    elif reason is None:
        reason = f"a {error.entity} error, not a record: nothing to read again"
    return Skipped(error.entity, error.record_id, error.code.value, reason)
