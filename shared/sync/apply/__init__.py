"""The apply step: one queue message into the mirror.

Idempotent under redelivery: a change whose version is not newer than the mirrored one is
skipped (nothing written, nothing logged), activity keys are derived from the change, so a batch
applied twice cannot log twice, and only its first result counts in the cycle's summary.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection
from typing import TypeVar

from shared import telemetry
from shared.queues import max_dequeue_count
from shared.services import Services
from shared.state.results import BatchResult
from shared.state.schedule import LoadMode, Step
from shared.state.sync_errors import ErrorCode
from shared.storage import BATCH_CONTAINER
from shared.sync.apply.account_applier import AccountApplier
from shared.sync.apply.contact_applier import ContactApplier
from shared.sync.apply.context import ApplyContext, feed_identity
from shared.sync.apply.resync_applier import ResyncApplier
from shared.sync.apply.sweep import sweep_partition
from shared.sync.batches import (
    AccountChange,
    BadBatch,
    Batch,
    ClaimCheck,
    ContactChange,
    Message,
    SweepBatch,
    decode_message,
)
from shared.sync.claims import ClaimStore
from shared.times import utcnow

logger = logging.getLogger(__name__)
Change = TypeVar("Change", AccountChange, ContactChange)


def apply_batch(services: Services, body: str | bytes) -> BatchResult:
    """Apply one queue message; raises BadBatch for a message that is not a batch."""
    message = _resolved(services, decode_message(body))
    ids = {"cycle_id": message.cycle_id, "batch_id": message.batch_id}
    with telemetry.span("acctsync.apply_batch", traceparent=message.traceparent, attributes=ids):
        if isinstance(message, SweepBatch):
            context = ApplyContext(services, _sweep_header(message))
            result = sweep_partition(context, message)
            _close_stamp(services, message)
        else:
            context = apply_changes(services, message)
            result = context.result
    services.results.record(
        message.cycle_id,
        message.batch_id,
        result,
        at=utcnow(),
        stage=_stage(message).value,
        lag=context.change_lag,
    )
    telemetry.count("acctsync.accounts_applied", result.accounts_applied)
    telemetry.count("acctsync.contacts_applied", result.contacts_applied)
    telemetry.count("acctsync.activities_logged", result.activities_logged)
    telemetry.count("acctsync.activities_suppressed", result.activities_suppressed)
    telemetry.count("acctsync.sync_errors", result.errors)
    logger.info("batch applied", extra={**ids, **dataclasses.asdict(result)})
    return result


def apply_message(
    services: Services, body: str | bytes, *, dequeue_count: int | None
) -> BatchResult:
    """Apply a queue message; a failure on its last allowed attempt is recorded as poisoned
    (in its cycle's summary and in the sync errors) before the host moves it to poison."""
    try:
        return apply_batch(services, body)
    except Exception as error:
        if dequeue_count is not None and dequeue_count >= max_dequeue_count():
            telemetry.count("acctsync.poison_messages", 1)
            logger.exception("batch failed for good; it moves to the poison queue")
            _record_poisoned(services, body, error)
        raise


def apply_changes(
    services: Services, batch: Batch, *, queued: bool = True, whole: Collection[str] = ()
) -> ApplyContext:
    """Apply a batch of changes in this process, whether it came off the queue or from a
    re-read of records (`queued=False`, shared/sync/reread.py), and close its feed stamp.
    `whole`: records applied even at a version the mirror holds (ApplyContext.whole)."""
    context = ApplyContext(services, _deduplicated(batch), whole=frozenset(whole))
    try:
        _apply_changes(context)
    except Exception:
        if not queued:
            # Nothing delivers it again to finish it: the change feed must not wait for it.
            _close_stamp(services, batch)
        raise
    _close_stamp(services, batch)
    return context


def _close_stamp(services: Services, message: Message) -> None:
    # Every entry of the batch is written: the change feed may pass its stamp. (Closed even
    # when this delivery wrote none: an earlier one that crashed may have left it open.)
    services.feed.stamps.close(feed_identity(message.cycle_id, message.batch_id))


def _apply_changes(context: ApplyContext) -> BatchResult:
    batch = context.batch
    if batch.resync:
        ResyncApplier(context).apply(batch.accounts)
        return context.result
    if batch.accounts:
        AccountApplier(context).apply(batch.accounts)
    if batch.contacts:
        ContactApplier(context).apply(batch.contacts)
    if batch.members:
        context.services.members.add_all(batch.members)
    if batch.search:
        context.services.search.add(batch.search)
    return context.result


def _stage(message: Batch | SweepBatch) -> Step:
    """The cycle step a batch belongs to: a step's batches carry its table's rows only."""
    if isinstance(message, SweepBatch):
        return Step.CONTACTS_SWEEP if message.entity_set == "contacts" else Step.ACCOUNTS_SWEEP
    if message.resync:
        return Step.RESYNC
    return Step.ACCOUNTS if message.accounts else Step.CONTACTS


def _resolved(services: Services, message: Message) -> Batch | SweepBatch:
    """A claim check's batch, read from its blob; other messages as they are."""
    if not isinstance(message, ClaimCheck):
        return message
    claims = ClaimStore(services.storage.container(BATCH_CONTAINER))
    batch = Batch.decode(claims.get(message.blob))
    if (batch.cycle_id, batch.batch_id) != (message.cycle_id, message.batch_id):
        raise BadBatch(f"the blob {message.blob} holds another batch")
    return batch


def _deduplicated(batch: Batch) -> Batch:
    """A record can come twice in one batch (a row that changed while a full load paged past
    it); one transaction cannot write a row twice, so its last occurrence, the newest, stands
    for it."""
    return dataclasses.replace(
        batch,
        accounts=_last_of_each(batch.accounts),
        contacts=_last_of_each(batch.contacts),
        members=list(dict.fromkeys(batch.members)),
    )


def _last_of_each(changes: list[Change]) -> list[Change]:
    return list({change.id: change for change in changes}.values())


def _sweep_header(sweep: SweepBatch) -> Batch:
    return Batch(sweep.cycle_id, sweep.batch_id, LoadMode.RELOAD, {}, generation=sweep.generation)


def _record_poisoned(services: Services, body: str | bytes, error: Exception) -> None:
    try:
        message = decode_message(body)
    except BadBatch:
        return  # not attributable to a cycle; the poison queue's count still shows it
    try:
        # It will not finish: the change feed must not wait for it.
        _close_stamp(services, message)
        services.results.poisoned(
            message.cycle_id, message.batch_id, message=str(error), at=utcnow()
        )
        services.errors.record(
            entity="batch",
            record_id=message.batch_id,
            operation="apply",
            message=f"the batch failed {max_dequeue_count()} times and went to the poison "
            f"queue: {type(error).__name__}: {error}. Fix the cause, then run "
            "`acctsync replay-poison`.",
            cycle_id=message.cycle_id,
            code=ErrorCode.BATCH_POISONED,
        )
    except Exception:
        logger.exception("could not record poisoned batch %s", message.batch_id)
