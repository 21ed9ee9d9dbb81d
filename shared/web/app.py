"""The HTTP API: one FastAPI app, served by the Functions app in Azure (through the
azure-functions ASGI support) and by the local host (uvicorn), so both run the same code.

Errors are always {"error": {"code", "message"}}; bad input is a 4xx and changes nothing. The
OpenAPI description is generated from the routes' models, at /api/openapi.json, with the
interactive docs at /api/docs.
"""

from __future__ import annotations

from fastapi import FastAPI

from shared import __version__
from shared.web.errors import install_error_handlers
from shared.web.guards import ASGIApp, limit_body
from shared.web.routes import accounts, contacts, feed, lists, sync

DESCRIPTION = """The marketing side of the Dynamics 365 account mirror.

Every request needs the function key in `x-functions-key` (or `?code=`). Field values are the
raw values the Dataverse Web API returns, under the account column's logical name."""


def create_app() -> FastAPI:
    app = FastAPI(
        title="acctsync",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        # A trailing slash is not a route of its own, nor a redirect: ids are checked as sent.
        redirect_slashes=False,
    )
    for router in (accounts.router, contacts.router, sync.router, lists.router, feed.router):
        app.include_router(router)
    install_error_handlers(app)
    return app


def asgi_app() -> ASGIApp:
    """The app as the hosts serve it: bodies over the size limit refused before parsing."""
    return limit_body(create_app())
