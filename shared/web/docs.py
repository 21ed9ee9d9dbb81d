"""The interactive API docs (/api/docs) with Swagger UI served from the package, not a CDN:
the page renders where the host has no way out (a locked-down network, a laptop offline).

The assets sit under /static/swagger-ui, beside the console's own: anonymous in both hosts
(the Functions host routes /static to the console function, the local host guards only /api),
like the docs page itself, and they carry no data.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
OAUTH2_REDIRECT_URL = "/api/docs/oauth2-redirect"
ASSETS_URL = "/static/swagger-ui"


def install_docs_assets(app: FastAPI) -> None:
    """Swagger UI's script and style sheet; mounted before the console's /static."""
    app.mount(ASSETS_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")


def install_docs(app: FastAPI) -> None:
    """The docs page and Swagger UI's OAuth2 redirect page, pointing at the packaged assets."""

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    for url, page in ((DOCS_URL, docs), (OAUTH2_REDIRECT_URL, oauth2_redirect)):
        app.add_api_route(url, page, methods=["GET"], include_in_schema=False)
