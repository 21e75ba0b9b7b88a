"""The API's own request dependencies: the account behind the ``X-API-Key`` header.

:data:`Auth` is every endpoint's: a secret key (a publishable one is 403). :data:`UnitAuth`
is ``POST /v1/unit``'s: a secret key, or a publishable key from one of its allowed origins.
The rules are ``accounts.service.authorize`` / ``authorize_unit``; this only translates.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from ..accounts import service as accounts
from ..errors import Unauthorized
from ..store.models import Account
from ..web.deps import Svc

# One header name serves both spellings: HTTP header names are case-insensitive.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def current_account(
    request: Request, services: Svc, api_key: str | None = Depends(api_key_header)
) -> Account:
    if not api_key:
        raise Unauthorized()  # before any database work, as always
    with services.store.read() as session:
        account, key = accounts.authorize(session, api_key)
    request.state.api_key_id = key.id
    return account


def unit_account(
    request: Request, services: Svc, api_key: str | None = Depends(api_key_header)
) -> Account:
    if not api_key:
        raise Unauthorized()
    with services.store.read() as session:
        account, key = accounts.authorize_unit(session, api_key, request.headers.get("origin"))
    request.state.api_key_id = key.id
    return account


Auth = Annotated[Account, Depends(current_account)]
UnitAuth = Annotated[Account, Depends(unit_account)]
