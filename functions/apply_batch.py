"""Queue trigger: applies one account/contact batch into the mirror.

A failure raises, so the host retries the message and, after host.json's maxDequeueCount,
moves it to the poison queue.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.queues import BATCH_QUEUE

bp = func.Blueprint()
logger = logging.getLogger(__name__)


@bp.function_name("apply_batch")
@bp.queue_trigger(arg_name="message", queue_name=BATCH_QUEUE, connection="AzureWebJobsStorage")
def apply_batch_message(message: func.QueueMessage) -> None:
    # Imported at the first message, not when the host indexes the functions: every new
    # instance pays the import before any trigger runs, and a heartbeat or HTTP instance
    # needs none of the apply step (the storage and blob SDKs, telemetry, the mirror).
    from shared.services import get_services
    from shared.sync.apply import apply_message

    result = apply_message(get_services(), message.get_body(), dequeue_count=message.dequeue_count)
    logger.info(
        "batch %s: %d accounts, %d contacts, %d activities",
        message.id,
        result.accounts_applied,
        result.contacts_applied,
        result.activities_logged,
    )
