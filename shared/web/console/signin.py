"""Signing in and out of the console: the API key entered once (locally, as admin), or Entra
ID (with the role its claims give). Every sign-in, and every refused one, is audited."""

from __future__ import annotations

import hmac
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared.audited_actions import record_sign_in
from shared.state.audit_trail import Actor
from shared.web.console import entra
from shared.web.console.pages import (
    FormDep,
    console_of,
    first,
    read_form,
    render,
    safe_next,
    signin_token,
)
from shared.web.console.roles import Role
from shared.web.console.session import (
    end_session,
    new_presession_id,
    presession,
    read_session,
    start_presession,
    start_session,
)
from shared.web.console.signin_settings import SignIn
from shared.web.routes.depends import ServicesDep

router = APIRouter(include_in_schema=False)
FormData = Annotated[dict[str, list[str]], Depends(read_form)]


@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    console = console_of(request)
    target = safe_next(next)
    if read_session(console.signer, request) is not None:
        return RedirectResponse(target, 303)
    if console.settings.sign_in is SignIn.ENTRA:
        assert console.settings.entra is not None
        redirect_uri = str(request.url_for("signin_callback"))
        auth_uri, flow = entra.begin(console.settings.entra, redirect_uri)
        response: Response = RedirectResponse(auth_uri, 303)
        pid = new_presession_id()
        start_presession(
            console.signer, request, response, pid=pid, lax=True, flow=flow, next=target
        )
        return response
    response = _form(request, target, problem=None, status=200)
    return response


@router.post("/signin")
def signin(request: Request, form: FormData, services: ServicesDep) -> Response:
    console = console_of(request)
    target = safe_next(first(form, "next"))
    expected = signin_token(request)
    if expected is None or not hmac.compare_digest(first(form, "csrf"), expected):
        return _form(request, target, problem="The form expired: enter the key again.", status=403)
    key = console.settings.api_key
    if console.settings.sign_in is not SignIn.KEY or key is None:
        return _form(request, target, problem="Sign-in with a key is off here.", status=403)
    address = request.client.host if request.client else "unknown"
    wait = math.ceil(console.wrong_keys.wait_s(address))
    if wait:
        problem = f"Too many wrong keys from here: try again in {wait} seconds."
        refused = _form(request, target, problem=problem, status=429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not hmac.compare_digest(first(form, "key").encode(), key.encode()):
        console.wrong_keys.failed(address)
        record_sign_in(services, Actor.api_key(), refused=f"a wrong key, from {address}")
        return _form(request, target, problem="That is not the key. Try again.", status=401)
    console.wrong_keys.succeeded(address)
    response = RedirectResponse(target, 303)
    # The key is the API's: whoever holds it can do anything, so the console gives admin.
    start_session(console.signer, request, response, Actor.api_key(), Role.ADMIN)
    record_sign_in(services, Actor.api_key(), role=Role.ADMIN.value)
    return response


@router.get("/signin/callback", name="signin_callback")
def signin_callback(request: Request, services: ServicesDep) -> Response:
    console = console_of(request)
    started = presession(console.signer, request)
    app = console.settings.entra
    if app is None or started is None or not isinstance(started.get("flow"), dict):
        return _problem(request, "The sign-in took too long or was started elsewhere.")
    flow: dict[str, Any] = started["flow"]  # type: ignore[assignment]
    try:
        user = entra.finish(app, flow, dict(request.query_params))
    except entra.SignInRefused as refused:
        who = refused.user or Actor.entra("", "someone Entra ID did not name")
        record_sign_in(services, who, refused=str(refused))
        return _problem(request, str(refused))
    target = safe_next(str(started.get("next") or "/"))
    # A page of our own moves on: the redirect from Entra ID was a cross-site navigation, and
    # the Strict session cookie goes along only with one that starts here.
    response = render(request, "moving.html", {"target": target}, session=None)
    start_session(console.signer, request, response, user.actor, user.role)
    record_sign_in(services, user.actor, role=user.role.value)
    return response


@router.post("/signout")
def signout(request: Request, form: FormDep) -> Response:
    response = RedirectResponse("/signin", 303)
    end_session(response)
    return response


def _form(request: Request, target: str, *, problem: str | None, status: int) -> HTMLResponse:
    console = console_of(request)
    # A fresh pre-sign-in cookie with each form: its token goes into the form.
    pid = new_presession_id()
    context = {
        "next": target,
        "problem": problem,
        "mode": console.settings.sign_in.value,
        "signin_csrf": console.signer.token("signin", pid),
    }
    response = render(request, "signin.html", context, session=None, status=status)
    if console.settings.sign_in is SignIn.KEY:
        start_presession(console.signer, request, response, pid=pid)
    return response


def _problem(request: Request, problem: str) -> HTMLResponse:
    context = {"next": "/", "problem": problem, "mode": "entra"}
    return render(request, "signin.html", context, session=None, status=403)
