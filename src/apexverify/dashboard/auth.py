"""Sign-in with an API key, sign-out, and the dependencies every dashboard page uses."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from ..accounts import service as accounts
from ..web.deps import Svc
from .render import page, secure_cookies
from .session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SignedIn,
    csrf_ok,
    resolve,
    session_value,
)

router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """Raised by ``signed_in``; answered with a redirect to /signin (or 401 for fetch)."""

    def __init__(self, wants_json: bool = False) -> None:
        super().__init__("sign-in required")
        self.wants_json = wants_json


class CsrfFailed(Exception):
    """A form without the token this browser was given: answered with 403."""


def signed_in(request: Request, services: Svc) -> SignedIn:
    with services.store.read() as session:
        who = resolve(session, services.secret, request.cookies.get(SESSION_COOKIE))
    if who is None:
        raise SignInRequired(wants_json=request.url.path.endswith("/status"))
    return who


async def checked_form(request: Request, services: Svc) -> FormData:
    """The posted form, once its CSRF token has been checked against this browser's seed."""
    form = await request.form()
    if not csrf_ok(services.secret, request.cookies.get(CSRF_COOKIE), form.get("csrf_token")):
        raise CsrfFailed()
    return form


User = Annotated[SignedIn, Depends(signed_in)]
Form = Annotated[FormData, Depends(checked_form)]


def _safe_next(target: Any) -> str:
    # Only same-site paths: "//evil.example" or "https://..." would be an open redirect.
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    return page(request, "signin.html", {"next": _safe_next(next)})


@router.post("/signin")
async def signin(request: Request, services: Svc, form: Form) -> Response:
    api_key = str(form.get("api_key") or "").strip()
    target = _safe_next(form.get("next"))
    limiter = request.app.state.limiter
    client = request.client.host if request.client else "unknown"
    decision = await limiter.hit(None, f"signin:{client}")
    if not decision.allowed:
        return page(
            request,
            "signin.html",
            {"next": target, "error": "Too many attempts; wait a few seconds and try again."},
            status=429,
        )
    with services.store.read() as session:
        found = accounts.authenticate(session, api_key) if api_key else None
    if found is None:
        return page(
            request,
            "signin.html",
            {"next": target, "error": "That API key is not valid (or has been revoked)."},
            status=401,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(services.secret, found[1]),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path="/",
    )
    return response


@router.post("/signout")
def signout(_form: Form) -> Response:
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def redirect_to_signin(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/signin?next={quote(target)}", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
