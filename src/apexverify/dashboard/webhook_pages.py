"""Webhooks in the dashboard (``/account/webhooks``): add an endpoint (its signing secret is
shown once, on the page that answers the form), list and remove them, and each one's
delivery log. The rules are the API's: ``apexverify.webhooks.service``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..batches.context import Services
from ..errors import ApexError
from ..web.deps import Svc, WriteTx
from ..webhooks import service
from ..webhooks.events import EVENT_TYPES
from ..webhooks.views import delivery_view, endpoint_view
from .auth import Form, User
from .render import page

router = APIRouter(include_in_schema=False)


def _webhooks_page(
    request: Request, services: Services, user: Any, status: int = 200, **extra: Any
) -> Response:
    with services.store.read() as session:
        endpoints = [endpoint_view(e) for e in service.list_endpoints(session, user.account.id)]
    context = {"user": user, "endpoints": endpoints, "event_types": EVENT_TYPES}
    return page(request, "webhooks.html", context | extra, status=status)


@router.get("/account/webhooks")
def webhooks_page(request: Request, user: User, services: Svc) -> Response:
    return _webhooks_page(request, services, user)


@router.post("/account/webhooks")
def add_webhook(request: Request, user: User, services: Svc, tx: WriteTx, form: Form) -> Response:
    url = str(form.get("url") or "").strip()
    description = str(form.get("description") or "").strip()
    events = [str(e) for e in form.getlist("events")]
    try:
        new = service.create_endpoint(
            tx,
            services.settings,
            services.secret,
            user.account.id,
            url,
            events=events,
            description=description,
        )
    except ApexError as exc:
        tx.rollback()
        # The form keeps what was typed, so the fix is one edit away.
        return _webhooks_page(
            request,
            services,
            user,
            exc.status_code if exc.status_code < 500 else 400,
            error=exc.message,
            form={"url": url, "description": description, "events": events},
        )
    tx.commit()  # the page below lists the new endpoint
    return _webhooks_page(request, services, user, new_secret=new.secret, new_url=url)


@router.post("/account/webhooks/{webhook_id}/remove")
def remove_webhook(
    request: Request, webhook_id: str, user: User, services: Svc, tx: WriteTx, _form: Form
) -> Response:
    try:
        service.remove_endpoint(tx, user.account.id, webhook_id)
    except ApexError as exc:
        tx.rollback()
        return _webhooks_page(request, services, user, exc.status_code, error=exc.message)
    return RedirectResponse("/account/webhooks", status_code=303)


@router.get("/account/webhooks/{webhook_id}")
def delivery_log(request: Request, webhook_id: str, user: User, services: Svc) -> Response:
    with services.store.read() as session:
        endpoint = endpoint_view(service.get_endpoint(session, user.account.id, webhook_id))
        rows = [delivery_view(d) for d in service.deliveries(session, user.account.id, webhook_id)]
    context = {"user": user, "endpoint": endpoint, "deliveries": rows}
    return page(request, "webhook_deliveries.html", context)
