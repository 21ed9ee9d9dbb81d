"""The admin console: server-rendered pages on the API's FastAPI app, at `/`.

Sync Status, Sync Errors, Select Fields to Sync, Validate, Pause / Resume, Records and the
Audit log, each a thin page over the functions the JSON API and the CLI use. Its own files only
(no CDN, no inline script), a signed session cookie, a CSRF token on every form that changes
anything, and the signed-in person's role deciding what they may change.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from shared.settings import SettingsError
from shared.web.console import (
    audit_page,
    checks_page,
    errors_page,
    fields_page,
    records_page,
    signin,
    status_page,
    verify_card,
)
from shared.web.console.pages import (
    HERE,
    SECURITY_HEADERS,
    Console,
    FormRefused,
    RoleRefused,
    SignInRequired,
    render,
    sign_in_location,
)
from shared.web.console.session import Signer, read_session
from shared.web.console.signin_settings import ConsoleSettings
from shared.web.error_answers import error_response


def install_console(app: FastAPI, *, api_key: str | None) -> None:
    """The console's pages, its static files and its refusals, on `app`."""
    try:
        settings = ConsoleSettings.from_env(api_key)
    except SettingsError as error:  # the API goes on; the console says what to fix
        settings = ConsoleSettings.broken(str(error))
    app.state.console = Console(settings, Signer(settings.session_key))
    pages = (
        signin,
        status_page,
        verify_card,
        errors_page,
        fields_page,
        checks_page,
        records_page,
        audit_page,
    )
    for module in pages:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(FormRefused, _refused)
    app.add_exception_handler(RoleRefused, _role_refused)


def _favicon() -> Response:
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


async def _sign_in(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    return RedirectResponse(sign_in_location(error.next_path), 303)


async def _refused(request: Request, error: Exception) -> HTMLResponse:
    console: Console = request.app.state.console
    session = read_session(console.signer, request)
    context = {"title": "Refused", "message": f"Nothing was changed: {error}."}
    return render(request, "refused.html", context, session=session, status=403)


async def _role_refused(request: Request, error: Exception) -> Response:
    """The API's error shape: a page never sends this request (it shows no such button)."""
    response = error_response(403, "role_required", f"Nothing was changed: {error}.")
    response.headers.update(SECURITY_HEADERS)
    return response
