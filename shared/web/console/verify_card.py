"""The Sync Status page's Mirror check: what the last verify found (in plain words, with sample
records to open), the verify under way or asked for, when the next scheduled one is due, and
the buttons that ask for one (`acctsync verify [--repair]`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.services import Services
from shared.state.schedule import CycleState
from shared.state.verify import Drift, VerifyResult
from shared.times import iso
from shared.verify.requests import request_verify, verify_status
from shared.verify.result import KIND_WORDS, drift_in_words
from shared.web.console.pages import OperatorFormDep, first, signed_in
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
SAMPLES_SHOWN = 20


@dataclass(frozen=True)
class Sample:
    id: str
    table: str
    what: str  # the kind of drift, in words
    account_id: str | None  # the Records page shows accounts: the contact's, for a contact


@dataclass(frozen=True)
class MirrorCheck:
    last: VerifyResult | None
    found: list[str]  # the drift the last verify found, one phrase per kind
    samples: list[Sample]
    running: dict[str, Any] | None  # the verify under way, with its table and stage
    requested: dict[str, Any] | None  # asked for, waiting for the next heartbeat
    next_due: str | None  # None: scheduled verifies are off (or nothing synced yet)
    scheduled: bool  # VERIFY_INTERVAL_HOURS above 0


def mirror_check(services: Services, state: CycleState) -> MirrorCheck:
    status = verify_status(services, state)
    last = status.last
    samples = list(last.samples[:SAMPLES_SHOWN]) if last is not None else []
    # The card's template reads the verify under way and the one asked for as status's JSON.
    return MirrorCheck(
        last=last,
        found=drift_in_words(last) if last is not None else [],
        samples=_linked(services, samples),
        running=status.running.to_json() if status.running is not None else None,
        requested=status.requested.to_json() if status.requested is not None else None,
        next_due=iso(status.next_due),
        scheduled=services.settings.verify_interval_hours > 0,
    )


def _linked(services: Services, drift: list[Drift]) -> list[Sample]:
    """Each sample with the account the Records page opens for it, as mirrored: the account
    itself, or a contact's account (none when the mirror lacks the record)."""
    accounts = services.accounts.get_many([d.id for d in drift if d.table == "accounts"])
    contacts = services.contacts.get_many([d.id for d in drift if d.table == "contacts"])
    samples = []
    for item in drift:
        if item.table == "accounts":
            account = item.id if item.id in accounts else None
        else:
            entity = contacts.get(item.id)
            account = str(entity.get("accountid") or "") or None if entity else None
        samples.append(Sample(item.id, item.table, KIND_WORDS[item.kind][0], account))
    return samples


@router.post("/verify")
def ask_for_verify(request: Request, services: ServicesDep, form: OperatorFormDep) -> Response:
    """Verify now / Verify and repair: the next heartbeat that finds no cycle running starts
    it (one asked for already and still waiting is the one that runs)."""
    repair = first(form, "action") == "repair"
    actor = signed_in(request).actor
    _, queued = request_verify(services, repair=repair, deep=False, actor=actor)
    return RedirectResponse(f"/?verify={'asked' if queued else 'waiting'}#mirror-check", 303)
