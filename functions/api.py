"""HTTP trigger: the whole API, one ASGI app behind function keys (auth level FUNCTION).

The app (FastAPI and pydantic) is imported at the first request, not with the function app:
the heartbeat and the queue worker, which scale out on their own, never pay for it.
"""

from __future__ import annotations

import azure.functions as func

bp = func.Blueprint()
_asgi: func.AsgiMiddleware | None = None


def _middleware() -> func.AsgiMiddleware:
    global _asgi
    if _asgi is None:
        from shared.web.app import asgi_app

        _asgi = func.AsgiMiddleware(asgi_app())
    return _asgi


@bp.function_name("api")
@bp.route(
    route="{*route}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def api(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _middleware().handle_async(req, context)  # type: ignore[no-any-return]


@bp.function_name("api_docs")
@bp.route(
    route="{page:regex(^(docs|openapi\\.json)$)}",
    methods=["GET"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
async def api_docs(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """The interactive docs and the OpenAPI description: no data, readable without a key
    (the docs page fetches the description without one)."""
    return await _middleware().handle_async(req, context)  # type: ignore[no-any-return]
