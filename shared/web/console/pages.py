"""What every console page shares: the templates, who is signed in, and the checks a form
that changes something must pass (the role it needs, its CSRF token, and a request from the
console's own origin)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from shared import __version__
from shared.web.console.attempts import WrongKeys
from shared.web.console.roles import Role
from shared.web.console.session import Session, Signer, presession, read_session
from shared.web.console.signin_settings import ConsoleSettings

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# Only the console's own files: no inline script or style, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = (
    ("/", "Sync Status"),
    ("/errors", "Sync Errors"),
    ("/fields", "Select Fields to Sync"),
    ("/validate", "Validate"),
    ("/pause", "Pause / Resume"),
    ("/records", "Records"),
    ("/audit", "Audit log"),
)
Form = dict[str, list[str]]


class SignInRequired(Exception):
    def __init__(self, next_path: str):
        super().__init__(next_path)
        self.next_path = next_path


class FormRefused(Exception):
    """A state-changing request that is not the console's own form: no change is made."""


class RoleRefused(Exception):
    """A signed-in person asked for what their role does not allow: no change is made."""

    def __init__(self, needed: Role, session: Session, contact: str):
        super().__init__(
            f"this needs the {needed.value} role; {session.user} has the {session.role.value} "
            f"role: ask {contact} for the {needed.app_role} role"
        )


@dataclass(frozen=True)
class Console:
    settings: ConsoleSettings
    signer: Signer
    wrong_keys: WrongKeys = field(default_factory=WrongKeys)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def signed_in(request: Request) -> Session:
    session = read_session(console_of(request).signer, request)
    if session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return session


SessionDep = Annotated[Session, Depends(signed_in)]


def csrf_token(request: Request, session: Session) -> str:
    return console_of(request).signer.token("csrf", session.sid)


def same_origin(request: Request) -> bool:
    """What the browser says about where the request comes from, when it says anything."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return origin is None or origin == own


async def read_form(request: Request) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body (the console's forms send nothing else)."""
    if not same_origin(request):
        raise FormRefused("the request did not come from the console's own pages")
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise FormRefused("send the console's form")
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qs(body, keep_blank_values=True)


async def checked_form(request: Request) -> dict[str, list[str]]:
    """The form of a signed-in person, with the CSRF token of their session."""
    session = signed_in(request)
    form = await read_form(request)
    if form.get("csrf", [""])[0] != csrf_token(request, session):
        raise FormRefused("the form's CSRF token is missing or wrong: reload the page")
    return form


FormDep = Annotated[Form, Depends(checked_form)]


def form_of(role: Role) -> Callable[[Request], Awaitable[Form]]:
    """The checked form of someone whose role allows `role`'s actions. The server decides:
    a form the page did not show (a forged request) is refused just the same."""

    async def checked(request: Request) -> Form:
        session = signed_in(request)
        if not session.role.allows(role):
            raise RoleRefused(role, session, console_of(request).settings.admin_contact)
        return await checked_form(request)

    return checked


OperatorFormDep = Annotated[Form, Depends(form_of(Role.OPERATOR))]
AdminFormDep = Annotated[Form, Depends(form_of(Role.ADMIN))]


def signin_token(request: Request) -> str | None:
    """The sign-in form's CSRF token, bound to this browser's pre-sign-in cookie."""
    value = presession(console_of(request).signer, request)
    return console_of(request).signer.token("signin", str(value["pid"])) if value else None


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Session | None,
    status: int = 200,
) -> HTMLResponse:
    page = {
        "request": request,
        "session": session,
        "csrf": csrf_token(request, session) if session else "",
        # Buttons a role may not use are not shown (and the server refuses them anyway).
        "can_operate": session is not None and session.role.allows(Role.OPERATOR),
        "can_administer": session is not None and session.role.allows(Role.ADMIN),
        "nav": NAV,
        "path": request.url.path,
        "version": __version__,
        **context,
    }
    response = templates.TemplateResponse(request, template, page, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def sign_in_location(next_path: str) -> str:
    return "/signin?next=" + quote(next_path, safe="/")


def safe_next(value: str | None) -> str:
    """Only a path of this site: never an open redirect. Browsers drop tabs and newlines from
    a URL and read a backslash as a slash, so "/\t/evil.example" is "//evil.example" to them:
    a path with a control character, a space or a backslash is refused whole."""
    if (
        not value
        or any(char.isspace() or not char.isprintable() for char in value)
        or "\\" in value
        or not value.startswith("/")
        or value.startswith("//")
    ):
        return "/"
    return value


def first(form: dict[str, list[str]], name: str) -> str:
    return form.get(name, [""])[0]
