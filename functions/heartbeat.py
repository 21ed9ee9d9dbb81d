"""Timer trigger: the minute heartbeat that starts and finishes sync cycles."""

from __future__ import annotations

import logging
import os
import socket

import azure.functions as func

from shared.services import get_services
from shared.sync.cycle import heartbeat

bp = func.Blueprint()
logger = logging.getLogger(__name__)

# Every minute; the cycle itself decides (under a lease) whether a cycle is due.
HEARTBEAT_SCHEDULE = "0 */1 * * * *"


@bp.function_name("heartbeat")
@bp.timer_trigger(
    arg_name="timer", schedule=HEARTBEAT_SCHEDULE, run_on_startup=False, use_monitor=True
)
def heartbeat_timer(timer: func.TimerRequest) -> None:
    owner = os.environ.get("WEBSITE_INSTANCE_ID") or socket.gethostname()
    outcome = heartbeat(get_services(), owner=owner)
    logger.info(
        "heartbeat: %s",
        outcome.action,
        extra={
            "cycle_id": outcome.cycle_id,
            "backlog": outcome.backlog,
            "past_due": timer.past_due,
        },
    )
