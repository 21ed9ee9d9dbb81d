"""Timer trigger: the heartbeat that starts, continues and finishes sync cycles."""

from __future__ import annotations

import logging
import os
import socket

import azure.functions as func

bp = func.Blueprint()
logger = logging.getLogger(__name__)

# Every 30 seconds, so a cycle starts within half a minute of being due; the cycle itself
# decides (under a lease) whether there is anything to do.
HEARTBEAT_SCHEDULE = "*/30 * * * * *"
HEARTBEAT_PERIOD_S = 30.0  # the schedule's period: status calls the host down after two


@bp.function_name("heartbeat")
@bp.timer_trigger(
    arg_name="timer", schedule=HEARTBEAT_SCHEDULE, run_on_startup=False, use_monitor=True
)
def heartbeat_timer(timer: func.TimerRequest) -> None:
    run_heartbeat(past_due=timer.past_due)


def run_heartbeat(*, past_due: bool, every_s: float = HEARTBEAT_PERIOD_S) -> None:
    """One heartbeat of a host whose timer fires every `every_s` (the local host's may differ)."""
    # Imported at the first tick, not when the host indexes the functions: an instance scaled
    # out for the queue never plans, and need not load the Dataverse client (httpx, msal) or
    # the storage SDKs to start.
    from shared.services import get_services
    from shared.sync.cycle import Action, heartbeat

    owner = os.environ.get("WEBSITE_INSTANCE_ID") or socket.gethostname()
    outcome = heartbeat(get_services(), owner=owner, beat_every_s=every_s)
    log = logger.error if outcome.action is Action.FAILED else logger.info
    log(
        "heartbeat: %s%s",
        outcome.action.value,
        f" ({outcome.error})" if outcome.error else "",
        extra={
            "cycle_id": outcome.cycle_id,
            "step": outcome.step_name,
            "backlog": outcome.backlog,
            "past_due": past_due,
        },
    )
