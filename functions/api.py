"""HTTP trigger: the whole API, one ASGI app behind function keys (auth level FUNCTION)."""

from __future__ import annotations

import azure.functions as func

from shared.web.api import api_app

bp = func.Blueprint()
_asgi = func.AsgiMiddleware(api_app)


@bp.function_name("api")
@bp.route(
    route="{*route}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    auth_level=func.AuthLevel.FUNCTION,
)
async def api(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await _asgi.handle_async(req, context)  # type: ignore[no-any-return]
