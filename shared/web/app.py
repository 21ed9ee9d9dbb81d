"""The HTTP API: one FastAPI app, served by the Functions app in Azure (through the
azure-functions ASGI support) and by the local host (uvicorn), so both run the same code.

Errors are always {"error": {"code", "message"}}; bad input is a 4xx and changes nothing. The
OpenAPI description is generated from the routes' models, at /api/openapi.json, with the
interactive docs at /api/docs (shared/web/docs.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from shared import __version__
from shared.web.console import install_console
from shared.web.docs import OPENAPI_URL, install_docs, install_docs_assets
from shared.web.error_answers import install_error_handlers
from shared.web.guards import ASGIApp, limit_body
from shared.web.routes import accounts, audit, contacts, feed, lists, sync

DESCRIPTION = """The marketing side of the Dynamics 365 account mirror.

Every request needs the function key in `x-functions-key` (or `?code=`). Field values are the
raw values the Dataverse Web API returns, under the account column's logical name."""


def create_app(*, api_key: str | None = None, api: bool = True) -> FastAPI:
    """The API under /api and the admin console at /. `api_key`: the key the local host
    guards the API with, which also signs a person in to the console; `api=False`: the
    console alone (the Functions app serves it from a function of its own)."""
    app = FastAPI(
        title="acctsync",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # install_docs: Swagger UI from the package, not FastAPI's CDN
        redoc_url=None,
        openapi_url=OPENAPI_URL if api else None,
        # A trailing slash is not a route of its own, nor a redirect: ids are checked as sent.
        redirect_slashes=False,
    )
    if api:
        routers = (accounts, contacts, sync, lists, feed, audit)
        for module in routers:
            app.include_router(module.router)
        install_docs(app)
    install_docs_assets(app)
    install_error_handlers(app)
    install_console(app, api_key=api_key)
    return app


def asgi_app(*, api_key: str | None = None, api: bool = True) -> ASGIApp:
    """The app as the hosts serve it: bodies over the size limit refused before parsing."""
    return limit_body(create_app(api_key=api_key, api=api))
