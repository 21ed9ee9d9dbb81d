"""Validate (the rows of `acctsync validate`, run again on each visit and on click) and
Pause / Resume (Marketo's Disable / Enable Sync), each asking to confirm first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from shared.setup.validate import validate
from shared.sync.pause_resume import BadPauseReason, pause_sync, resume_sync
from shared.times import iso
from shared.web.console.pages import OperatorFormDep, SessionDep, first, render, signed_in
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)


@router.get("/validate")
def validate_page(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    rows = [row.to_json() for row in validate(lambda: services.settings)]
    failed = sum(1 for r in rows if r["status"] == "fail")
    context = {"rows": rows, "failed": failed}
    return render(request, "validate.html", context, session=session)


@router.get("/pause")
def pause_page(
    request: Request, services: ServicesDep, session: SessionDep, done: str = ""
) -> Response:
    pause = services.pauses.get()
    context = {
        "paused": pause is not None,
        "since": iso(pause.since) if pause else None,
        "by": pause.by if pause else None,
        "reason": pause.reason if pause else None,
        "done": done if done in ("paused", "resumed") else "",
    }
    return render(request, "pause.html", context, session=session)


@router.post("/pause")
def pause_or_resume(request: Request, services: ServicesDep, form: OperatorFormDep) -> Response:
    action = first(form, "action")
    actor = signed_in(request).actor
    if first(form, "confirm") != "on":  # not confirmed: nothing changes
        return RedirectResponse("/pause", 303)
    if action == "pause":
        try:
            pause_sync(services, actor=actor, reason=first(form, "reason").strip())
        except BadPauseReason:
            return RedirectResponse("/pause?done=bad-reason", 303)
        return RedirectResponse("/pause?done=paused", 303)
    if action == "resume":
        resume_sync(services, actor=actor)
        return RedirectResponse("/pause?done=resumed", 303)
    return RedirectResponse("/pause", 303)
