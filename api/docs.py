"""The interactive API docs (``/docs``, ``/redoc``) with every asset served from the package.

FastAPI's default docs pages load Swagger UI and ReDoc from a CDN and start them with an inline
script; on the origin of the case pages, that would let a third party's script read case data
with the user's session. Here the bundles come from the ``fastapi-offline`` package, Swagger UI
is started by a script file of our own, and ``/docs`` and ``/redoc`` carry a CSP that allows
scripts from this origin only (``api.operations.DOCS_CSP``): no CDN and no inline script.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
VENDOR_PATH = f"{ASSETS_PATH}/vendor"
VENDOR_DIR = Path(str(files("fastapi_offline") / "static"))
"""swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""
OWN_DIR = Path(__file__).resolve().parent / "docs_static"

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" href="{vendor}/favicon.png">
<link rel="stylesheet" href="{vendor}/swagger-ui.css">
</head>
<body data-openapi-url="{openapi}">
<div id="swagger-ui"></div>
<script src="{vendor}/swagger-ui-bundle.js"></script>
<script src="{assets}/swagger-init.js"></script>
</body>
</html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" href="{vendor}/favicon.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{vendor}/redoc.standalone.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from packaged assets (create the app with no docs URLs)."""
    # The vendor mount first: the own mount's prefix would otherwise take its paths.
    app.mount(VENDOR_PATH, StaticFiles(directory=VENDOR_DIR), name="docs-vendor")
    app.mount(ASSETS_PATH, StaticFiles(directory=OWN_DIR), name="docs-assets")
    fields = {
        "title": escape(app.title),
        "openapi": escape(app.openapi_url or "/openapi.json"),
        "vendor": VENDOR_PATH,
        "assets": ASSETS_PATH,
    }
    swagger, redoc = SWAGGER_PAGE.format(**fields), REDOC_PAGE.format(**fields)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        """Swagger UI for the API."""
        return HTMLResponse(swagger)

    @app.get("/redoc", include_in_schema=False)
    def redoc_ui() -> HTMLResponse:
        """ReDoc for the API."""
        return HTMLResponse(redoc)
