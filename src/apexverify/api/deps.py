"""Request dependencies: the service bundle and the authenticated account."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from ..accounts import service as accounts
from ..batches.context import Services
from ..errors import Unauthorized
from ..store.models import Account

# One header name serves both spellings: HTTP header names are case-insensitive.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def current_account(
    request: Request,
    api_key: str | None = Depends(api_key_header),
    services: Services = Depends(get_services),
) -> Account:
    if not api_key:
        raise Unauthorized()
    with services.store.read() as session:
        found = accounts.authenticate(session, api_key)
    if found is None:
        raise Unauthorized()
    request.state.api_key_id = found[1].id
    return found[0]
