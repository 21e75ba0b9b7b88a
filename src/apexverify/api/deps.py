"""The API's own request dependency: the account behind the ``X-API-Key`` header."""

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
        raise Unauthorized()
    with services.store.read() as session:
        found = accounts.authenticate(session, api_key)
    if found is None:
        raise Unauthorized()
    request.state.api_key_id = found[1].id
    return found[0]


Auth = Annotated[Account, Depends(current_account)]
