"""HTTP triggers: the whole API under /api, one ASGI app behind function keys (auth level
FUNCTION), and the admin console at / (anonymous to the Functions host: the console signs its
users in with Entra ID itself, and serves none of the API).

host.json's routePrefix is empty so that the console can sit at the site's root; the API's
routes carry the api/ prefix themselves. The app (FastAPI and pydantic) is imported at the
first request, not with the function app: the heartbeat and the queue worker, which scale out
on their own, never pay for it.
"""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
_asgi: func.AsgiMiddleware | None = None
_console: func.AsgiMiddleware | None = None


def _middleware() -> func.AsgiMiddleware:
    global _asgi
    if _asgi is None:
        from shared.web.app import asgi_app

        _asgi = func.AsgiMiddleware(asgi_app())
    return _asgi


def _console_middleware() -> func.AsgiMiddleware:
    global _console
    if _console is None:
        from shared.web.app import asgi_app

        _console = func.AsgiMiddleware(asgi_app(api=False))
    return _console


@bp.function_name("api")
@bp.route(
    route="api/{*route}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def api(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _middleware().handle_async(req, context)  # type: ignore[no-any-return]


@bp.function_name("api_docs")
@bp.route(
    route="api/{page:regex(^(docs|openapi\\.json)$)}",
    methods=["GET"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
async def api_docs(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The interactive docs and the OpenAPI description: no data, readable without a key
    (the docs page fetches the description without one)."""
    return await _middleware().handle_async(req, context)  # type: ignore[no-any-return]


@bp.function_name("console")
@bp.route(route="{*path}", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def console(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The admin console: its pages ask for an Entra ID sign-in of their own; the app behind
    this function has no API routes, so no key-protected data is reachable through it."""
    return await _console_middleware().handle_async(req, context)  # type: ignore[no-any-return]
