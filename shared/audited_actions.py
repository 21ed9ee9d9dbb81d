"""The one place an admin action is recorded: each action's shared function (the one the CLI,
the API and the console all call) runs its change inside `audited`, with the actor its caller
passes in, so no entry point can leave an action out of the trail.

What goes in: who, the action, the values before and after (a selection, a pause, what was
asked and what came of it), and the outcome. Never a secret, token or delta link: the callers
pass values the product shows anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError

from shared.services import Services
from shared.state.audit_trail import Actor, AuditAction, AuditEntry, Outcome
from shared.times import utcnow

logger = logging.getLogger(__name__)


@dataclass
class Recording:
    """What the action fills in while it runs."""

    before: Any = None
    after: Any = None


@contextmanager
def audited(
    services: Services, actor: Actor, action: AuditAction, *, before: Any = None
) -> Iterator[Recording]:
    """Run an action and record one entry for it: succeeded, or failed with its error (which
    goes on up). A trail that cannot be written fails the request: an action that cannot be
    recorded must not look as if it went unrecorded on purpose."""
    recording = Recording(before=before)
    try:
        yield recording
    except Exception as error:
        try:
            record(services, actor, action, recording, Outcome.FAILED, detail=_said(error))
        except AzureError:  # the action's own error is the one to report
            logger.warning("could not record the failed %s in the audit trail", action.value)
        raise
    record(services, actor, action, recording, Outcome.SUCCEEDED)


def record(
    services: Services,
    actor: Actor,
    action: AuditAction,
    recording: Recording,
    outcome: Outcome,
    *,
    detail: str | None = None,
) -> None:
    services.audit.add(
        AuditEntry(
            at=utcnow(),
            actor=actor,
            action=action,
            before=recording.before,
            after=recording.after,
            outcome=outcome,
            detail=detail,
        )
    )


def _said(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def record_sign_in(
    services: Services, actor: Actor, *, role: str | None = None, refused: str | None = None
) -> None:
    """A console sign-in: the role it gave, or why it was refused (no session)."""
    recording = Recording(after={"role": role} if role else None)
    outcome = Outcome.REFUSED if refused is not None else Outcome.SUCCEEDED
    record(services, actor, AuditAction.SIGN_IN, recording, outcome, detail=refused)
