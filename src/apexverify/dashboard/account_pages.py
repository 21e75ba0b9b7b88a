"""Credits and API keys: create (a secret key is shown once, on the page that answers the
form; a publishable key, for web pages, is listed in full with its allowed origins) and
revoke. Revoking the key this browser signed in with signs it out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..accounts import service as accounts
from ..batches.context import Services
from ..errors import ApexError
from ..web.deps import Svc, WriteTx
from .auth import Form, User
from .render import page
from .session import SESSION_COOKIE

router = APIRouter(include_in_schema=False)
LABEL_MAX = 255


def _account_page(
    request: Request, services: Services, user: Any, status: int = 200, **extra: Any
) -> Response:
    with services.store.read() as session:
        account = accounts.get_account(session, user.account.id)
        balances = accounts.balances(account)
        keys = accounts.list_keys(session, user.account.id)
        origins = accounts.allowed_origins(session, [key.id for key in keys])
    context = {
        "user": user,
        "balances": balances,
        "keys": keys,
        "origins": origins,
        "current_key": user.key.id,
    }
    return page(request, "account.html", context | extra, status=status)


@router.get("/account")
def account_page(request: Request, user: User, services: Svc) -> Response:
    return _account_page(request, services, user)


@router.post("/account/keys")
def create_key(request: Request, user: User, services: Svc, tx: WriteTx, form: Form) -> Response:
    label = str(form.get("label") or "").strip()
    if len(label) > LABEL_MAX:
        return _account_page(
            request, services, user, 400, error=f"A label has at most {LABEL_MAX} characters."
        )
    publishable = form.get("kind") == "publishable"
    # One origin a line (or separated by spaces or commas), as pasted from an address bar.
    origins = str(form.get("origins") or "").replace(",", " ").split()
    try:
        new = accounts.create_key(
            tx, user.account.id, label, publishable=publishable, origins=origins
        )
    except ApexError as exc:
        tx.rollback()
        return _account_page(
            request,
            services,
            user,
            exc.status_code,
            error=exc.message,
            typed_label=label,
            typed_origins="\n".join(origins),
        )
    tx.commit()  # the page below lists the new key
    return _account_page(
        request, services, user, new_key=new.api_key, new_label=label, new_kind=new.kind
    )


@router.post("/account/keys/{key_id}/revoke")
def revoke_key(
    request: Request, key_id: str, user: User, services: Svc, tx: WriteTx, _form: Form
) -> Response:
    try:
        accounts.revoke_key(tx, user.account.id, key_id)
    except ApexError as exc:
        tx.rollback()
        return _account_page(request, services, user, exc.status_code, error=exc.message)
    if key_id == user.key.id:
        # The next page load would find the session's key revoked; say so directly.
        response = RedirectResponse("/signin?revoked=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return RedirectResponse("/account", status_code=303)
