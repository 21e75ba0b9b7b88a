"""The API's documentation: the OpenAPI document served at ``/openapi.json``, and Swagger UI
(``/docs``) and ReDoc (``/redoc``) served from this server alone.

The UI assets come from the ``fastapi-offline`` package, which ships swagger-ui-dist and the
ReDoc standalone bundle as package files: ``pip install`` brings them, nothing is fetched from
a CDN when a page opens, so the pages work on a machine without internet access.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .routers import batches
from .schemas import HTTPValidationError

ASSETS_URL = "/docs-assets"


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _our_validation_error(document: dict[str, Any]) -> None:
    """The 422 body as ``web/errors.py`` writes it, ``message`` included. FastAPI writes its
    own ``HTTPValidationError`` over ours whenever some operation does not declare its 422;
    every 422 comes from the one handler, so ours is right for all of them."""
    schema = HTTPValidationError.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    components = document["components"]["schemas"]
    components.update(schema.pop("$defs", {}))
    components["HTTPValidationError"] = schema


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus what it cannot see: the upload's optional form fields and the
    422 body of the one validation handler."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        batches.document_upload_form(document)
        _our_validation_error(document)
        app.openapi_schema = document
    return app.openapi_schema


def install(app: FastAPI) -> None:
    """Serve the document and both UIs; the app must be created with ``docs_url=None`` and
    ``redoc_url=None`` (FastAPI's own pages load their assets from a CDN)."""
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
