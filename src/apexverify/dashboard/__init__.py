"""The web dashboard served at ``/``: server-rendered pages over the same batch and account
use cases as the v1 API. Mounted beside the API by ``apexverify/app.py``: ``router`` holds
its pages, ``install(app)`` adds its assets and its answers to signed-out and CSRF errors."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from . import account_pages, auth, batch_pages, results_pages, webhook_pages
from .render import HERE, error_page, owns

__all__ = ["error_page", "install", "owns", "router"]

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(batch_pages.router)
router.include_router(results_pages.router)
router.include_router(account_pages.router)
router.include_router(webhook_pages.router)


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(auth.SignInRequired)
    async def _signin(request: Request, exc: auth.SignInRequired) -> Response:
        if exc.wants_json:
            return JSONResponse({"message": "Signed out"}, status_code=401)
        return auth.redirect_to_signin(request)

    @app.exception_handler(auth.CsrfFailed)
    async def _csrf(request: Request, _exc: auth.CsrfFailed) -> Response:
        return error_page(
            request, 403, "This form has expired or did not come from this site; reload the page."
        )
