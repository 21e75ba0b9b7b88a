"""Rendering: one Jinja2 environment, the CSRF cookie, and the HTML error page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..batches.countries import ISO_COUNTRIES
from ..credits import from_milli
from ..store.models import iso
from . import codes
from .session import CSRF_COOKIE, csrf_token, new_csrf_seed

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
TEMPLATES.env.globals.update(
    AUDIENCES=codes.AUDIENCES,
    INDUSTRIES=codes.INDUSTRIES,
    OBJECTIVES=codes.OBJECTIVES,
    code_label=codes.label,
    COUNTRIES=sorted(ISO_COUNTRIES),
)


def figure(value: object) -> str:
    """A credit or count for display: ``330``, ``12.5``, ``0.125`` (no float noise)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:,.3f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value):,}"


TEMPLATES.env.filters.update(
    iso=iso, credits=lambda milli: figure(from_milli(milli)), figure=figure
)

# Paths the dashboard answers; errors on any other path keep the API's JSON bodies.
DASHBOARD_PREFIXES = ("/signin", "/signout", "/batches", "/account", "/static/")


# Pages are never framed (clickjacking) or cached, and run only the app's own script; the
# inline style attributes are the chart bars' widths.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def owns(path: str) -> bool:
    return path == "/" or path.startswith(DASHBOARD_PREFIXES)


def secure_cookies(request: Request) -> bool:
    # Behind a TLS-terminating proxy, uvicorn's --proxy-headers makes the scheme "https".
    return request.url.scheme == "https"


def page(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """Render ``template`` with the CSRF token of this browser (issuing its seed if new)."""
    services = request.app.state.services
    seed = request.cookies.get(CSRF_COOKIE)
    fresh = not seed
    if not seed:
        seed = new_csrf_seed()
    data = {"csrf_token": csrf_token(services.secret, seed), "user": None, **(context or {})}
    response = TEMPLATES.TemplateResponse(request, template, data, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    if fresh:
        response.set_cookie(
            CSRF_COOKIE,
            seed,
            httponly=True,
            samesite="strict",
            secure=secure_cookies(request),
            path="/",
        )
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(request, "error.html", {"status": status, "message": message}, status=status)
